"""The dashboard at ``/``: server-rendered pages, no build step, no script required."""

from hookline.web.routes import install, router

__all__ = ["install", "router"]
