"""TLS of deliveries with the aiohttp transport: the CAs the sender trusts, and each
endpoint's client certificate as an ``ssl.SSLContext`` (the reqwest transport gives each
endpoint with a certificate a client of its own instead).

The aiohttp transport has one HTTP session (one connector, with the address policy's
socket factory); an endpoint with a client certificate gets an ``ssl.SSLContext`` of its
own, passed per request. aiohttp keys its pool of connections by that context (its
``ConnectionKey`` holds it), so a connection made with one endpoint's certificate is
never reused for another endpoint's request. Contexts are built once per endpoint
version (a change of the endpoint makes a new one) and a bounded number is kept.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Iterator

from hookline.exceptions import ConfigError
from hookline.store.records import Job

#: Endpoint contexts kept at once; beyond that the least recently used is rebuilt later.
CACHE_SIZE = 1024


def default_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system's trusted CAs, and those of ``HOOKLINE_CA_BUNDLE`` besides."""
    context = ssl.create_default_context()
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"HOOKLINE_CA_BUNDLE={ca_bundle}: not a readable file of PEM certificates ({exc})"
            ) from None
    return context


class ClientTls:
    """The SSL context of each request: the session's default, or the endpoint's own."""

    def __init__(self, ca_bundle: str | None = None) -> None:
        self.ca_bundle = ca_bundle
        #: For the session's connector: None leaves aiohttp's own default.
        self.default = default_context(ca_bundle) if ca_bundle else None
        self._contexts: OrderedDict[tuple[str, float], ssl.SSLContext] = OrderedDict()

    def context(self, job: Job) -> ssl.SSLContext | bool:
        """``True`` (the session's default) for an endpoint without a client certificate."""
        if job.client_cert is None or job.client_key is None:
            return True
        key = (job.endpoint_id, job.endpoint_version)
        found = self._contexts.get(key)
        if found is None:
            found = self._contexts[key] = self._build(job.client_cert, job.client_key)
            while len(self._contexts) > CACHE_SIZE:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
        return found

    def _build(self, cert: str, key: str) -> ssl.SSLContext:
        context = default_context(self.ca_bundle)
        # The ssl module loads a certificate chain from files only: the key goes through
        # a memory-only file (memfd) where the platform has one.
        with _private_file(cert + "\n" + key) as path:
            context.load_cert_chain(path)
        return context


#: TLS alerts (OpenSSL's reason codes) that a server sends when it wants a client
#: certificate it did not get: TLS 1.3 says so, TLS 1.2 servers mostly send
#: handshake_failure.
_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake failure",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
}


def client_certificate_error(exc: BaseException, job: Job) -> str | None:
    """What to say when the endpoint refused the TLS handshake over the client
    certificate (none given, or one it does not accept); None for other errors."""
    reason = getattr(exc, "reason", None) or getattr(
        getattr(exc, "os_error", None) or exc.__cause__, "reason", None
    )
    alert = _CERTIFICATE_ALERTS.get(str(reason))
    return None if alert is None else certificate_alert_error(alert, job)


def certificate_alert_error(alert: str, job: Job) -> str:
    """The words for a handshake the endpoint refused over the client certificate,
    whichever TLS library saw the ``alert``."""
    if job.client_cert is None:
        return (
            f"the endpoint asked for a client certificate (TLS alert: {alert}) and none is "
            "set; give the endpoint client_cert and client_key"
        )
    return f"the endpoint refused its client certificate (TLS alert: {alert})"


@contextlib.contextmanager
def _private_file(text: str) -> Iterator[str]:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("hookline-client-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as directory:  # created readable by us only
        path = os.path.join(directory, "client.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as file:
            file.write(text)
        yield path


__all__ = [
    "ClientTls",
    "certificate_alert_error",
    "client_certificate_error",
    "default_context",
]
