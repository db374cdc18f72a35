"""How attempts go over the wire: the ``Transport`` interface and its implementations."""

from __future__ import annotations

import os

from hookline.sender.transport.aiohttp_client import AiohttpTransport
from hookline.sender.transport.base import Reply, Resolve, Transport
from hookline.sender.transport.reqwest_client import ReqwestTransport


def new_transport(
    *, allow_private: bool, ca_bundle: str | None = None, resolve: Resolve | None = None
) -> Transport:
    """The transport of an engine (call it inside the running event loop)."""
    if os.environ.get("HOOKLINE_TRANSPORT", "reqwest") != "aiohttp":
        return ReqwestTransport(allow_private=allow_private, ca_bundle=ca_bundle, resolve=resolve)
    return AiohttpTransport(allow_private=allow_private, ca_bundle=ca_bundle, resolve=resolve)


__all__ = ["AiohttpTransport", "Reply", "ReqwestTransport", "Resolve", "Transport", "new_transport"]
