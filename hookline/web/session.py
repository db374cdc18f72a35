"""The dashboard's sign-in session: a signed cookie that never holds the key itself.

Signing in takes the admin token or an app's API key, the same credentials the API
takes. The cookie then carries who signed in (``admin`` or the app's id), a fingerprint
of the credential, an expiry and a CSRF token, signed with HMAC-SHA256:

* nothing in it can be replayed against the API, or guessed from offline: the
  fingerprint is an HMAC of the credential's hash under the server's secret, so a
  leaked cookie does not let anyone test guesses of a weak admin token;
* it cannot be forged or altered without the secret;
* every request compares the fingerprint with the credential as it is now, so rotating
  an app's key or the admin token ends the sessions made with the old one.

The secret (``session_secret``) is, in this order: ``HOOKLINE_SESSION_SECRET`` (at least
32 characters; set the same one on several ``serve`` processes behind one address);
derived with HKDF from ``HOOKLINE_MASTER_KEY`` when that is set; else random per
process. With either of the first two, sessions survive a restart; with the last, a
restart signs everyone out, a fair price for having no secret to manage.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it), and Secure on HTTPS, or always with ``HOOKLINE_COOKIE_SECURE=1`` (behind a
proxy that ends TLS and speaks plain HTTP to hookline); POST forms also carry the
session's CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hookline.config import parse_bool
from hookline.exceptions import ConfigError
from hookline.front.access import Caller

COOKIE = "hookline_session"
#: A session ends after this long even if the key is still good.
LIFETIME = 12 * 3600.0
ADMIN = "admin"


SECRET_ENV = "HOOKLINE_SESSION_SECRET"
SECURE_ENV = "HOOKLINE_COOKIE_SECURE"
MIN_SECRET_LENGTH = 32


def credential_hash(credential: str) -> str:
    """The same hash the store keeps of an app's API key (its ``api_key_hash``)."""
    return hashlib.sha256(credential.encode()).hexdigest()


def session_secret(env: Mapping[str, str] | None = None) -> bytes:
    """The secret sessions are signed with (see the module's docstring)."""
    env = os.environ if env is None else env
    configured = env.get(SECRET_ENV, "")
    if configured:
        if len(configured) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{SECRET_ENV} is shorter than {MIN_SECRET_LENGTH} characters; make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return configured.encode()
    master = env.get("HOOKLINE_MASTER_KEY", "")
    if master:
        return _derive(master.encode(), b"hookline dashboard sessions")
    return secrets.token_bytes(32)


def cookie_secure(env: Mapping[str, str] | None = None) -> bool:
    """Whether every cookie is Secure, even on a plain-HTTP request."""
    env = os.environ if env is None else env
    return parse_bool(SECURE_ENV, env.get(SECURE_ENV, ""))


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in: ``subject`` is ``admin`` or an app id."""

    subject: str
    fingerprint: str
    expires: float
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.subject == ADMIN

    @property
    def app_id(self) -> str | None:
        return None if self.is_admin else self.subject

    @property
    def caller(self) -> Caller:
        """Who signed in, asked what they may see as the API asks (``hookline.front.access``)."""
        return Caller(app_id=self.app_id)


class SessionSigner:
    def __init__(self, secret: bytes | None = None) -> None:
        secret = secret or session_secret()
        # One key to sign cookies, another to fingerprint credentials.
        self._signing = _derive(secret, b"sign")
        self._binding = _derive(secret, b"credential")

    def fingerprint(self, credential_hash: str) -> str:
        """What the cookie holds of the credential: useless without the secret."""
        return hmac.new(self._binding, credential_hash.encode(), hashlib.sha256).hexdigest()

    def new(self, subject: str, credential_hash: str, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        return Session(
            subject=subject,
            fingerprint=self.fingerprint(credential_hash),
            expires=now + LIFETIME,
            csrf=secrets.token_urlsafe(24),
        )

    def dumps(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(
            orjson.dumps(
                {
                    "sub": session.subject,
                    "fp": session.fingerprint,
                    "exp": session.expires,
                    "csrf": session.csrf,
                }
            )
        ).decode()
        return f"{payload}.{self._sign(payload)}"

    def loads(self, cookie: str, now: float | None = None) -> Session | None:
        """The session in a cookie, or None if it is forged, altered, malformed or old."""
        payload, _, signature = cookie.rpartition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            doc = orjson.loads(base64.urlsafe_b64decode(payload))
            session = Session(
                subject=str(doc["sub"]),
                fingerprint=str(doc["fp"]),
                expires=float(doc["exp"]),
                csrf=str(doc["csrf"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._signing, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
