"""hookline: Selz-compatible webhooks, the sender a platform runs and the receiver an app runs."""

__version__ = "0.1.0"
