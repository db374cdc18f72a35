"""How attempts go over the wire: the ``Transport`` interface and its implementations.

``reqwest`` is the default, chosen by measurement (bench/sender_transport.py,
docs/benchmarks.md); ``aiohttp`` stays selectable for endpoints whose TLS only OpenSSL
accepts.
"""

from __future__ import annotations

from hookline.sender.transport.aiohttp_client import AiohttpTransport
from hookline.sender.transport.base import Reply, Resolve, Transport
from hookline.sender.transport.reqwest_client import ReqwestTransport


def new_transport(
    *,
    allow_private: bool,
    ca_bundle: str | None = None,
    resolve: Resolve | None = None,
    kind: str = "reqwest",
) -> Transport:
    """The transport of an engine (call it inside the running event loop)."""
    chosen = AiohttpTransport if kind == "aiohttp" else ReqwestTransport
    return chosen(allow_private=allow_private, ca_bundle=ca_bundle, resolve=resolve)


__all__ = ["AiohttpTransport", "Reply", "ReqwestTransport", "Resolve", "Transport", "new_transport"]
