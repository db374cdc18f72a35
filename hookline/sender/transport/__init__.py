"""How attempts go over the wire: the ``Transport`` interface and its implementations."""

from __future__ import annotations

from hookline.sender.transport.aiohttp_client import AiohttpTransport
from hookline.sender.transport.base import Reply, Resolve, Transport


def new_transport(
    *, allow_private: bool, ca_bundle: str | None = None, resolve: Resolve | None = None
) -> Transport:
    """The transport of an engine (call it inside the running event loop)."""
    return AiohttpTransport(allow_private=allow_private, ca_bundle=ca_bundle, resolve=resolve)


__all__ = ["AiohttpTransport", "Reply", "Resolve", "Transport", "new_transport"]
