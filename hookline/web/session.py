"""The dashboard's sign-in session: a signed cookie that never holds the key itself.

Signing in takes the admin token or an app's API key, the same credentials the API
takes. The cookie then carries who signed in (``admin`` or the app's id), a SHA-256
fingerprint of the credential, an expiry and a CSRF token, signed with HMAC-SHA256:

* nothing in it can be replayed against the API: the key is not there, only its hash;
* it cannot be forged or altered without the signing secret;
* every request compares the fingerprint with the credential as it is now, so rotating
  an app's key or the admin token ends the sessions made with the old one;
* the secret is ``HOOKLINE_SESSION_SECRET`` where several ``serve`` processes must
  accept each other's cookies, else random per process: a restart signs everyone out,
  which is a fair price for having no secret to manage.

The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
sends it); POST forms also carry the session's CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

import orjson

COOKIE = "hookline_session"
#: A session ends after this long even if the key is still good.
LIFETIME = 12 * 3600.0
ADMIN = "admin"


def fingerprint(credential: str) -> str:
    # The same hash the store keeps of an app's API key, so an app's fingerprint is
    # compared with its ``api_key_hash`` column directly.
    return hashlib.sha256(credential.encode()).hexdigest()


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

    def may_see(self, app_id: str) -> bool:
        return self.is_admin or self.subject == app_id


class SessionSigner:
    def __init__(self, secret: bytes | None = None) -> None:
        configured = os.environ.get("HOOKLINE_SESSION_SECRET", "")
        self._secret = secret or configured.encode() or secrets.token_bytes(32)

    def new(self, subject: str, credential: str, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        return Session(
            subject=subject,
            fingerprint=fingerprint(credential),
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
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
