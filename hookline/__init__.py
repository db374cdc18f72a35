"""hookline: Selz-compatible webhooks, the sender a platform runs and the receiver an app runs."""

from __future__ import annotations

__version__ = "0.1.0"

# Not ``from typing import TYPE_CHECKING``: importing typing is most of the cost of
# ``import hookline`` (type checkers know this name either way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from hookline.client import AsyncClient, Client
    from hookline.transactional import publish, publish_async

__all__ = ["AsyncClient", "Client", "__version__", "publish", "publish_async"]

#: Loaded on first use, so that ``import hookline`` (and the receiver, the CLI) does not
#: pay for the client's HTTP library and models, nor for the store.
_LAZY = {
    "Client": "hookline.client",
    "AsyncClient": "hookline.client",
    "publish": "hookline.transactional",
    "publish_async": "hookline.transactional",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hookline' has no attribute {name!r}")
