"""Verification keys at rest: sealed with a master key when the operator sets one.

A sealed value is stored as ``fernet:<token>`` (Fernet: AES-128-CBC with an HMAC, from
``cryptography``); anything else is a key stored in the clear. Both kinds can sit side
by side, so setting ``HOOKLINE_MASTER_KEY`` on an existing database needs no downtime:
new keys are sealed at once, and ``hookline rotate-master-key`` seals the old ones.

During a master-key rotation ``HOOKLINE_MASTER_KEY_OLD`` may name the previous master
key: values sealed with it are still opened, and every value written is sealed with the
new one. API keys are never here: hookline keeps only their SHA-256.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hookline.exceptions import ConfigError

PREFIX = "fernet:"
MASTER_KEY_ENV = "HOOKLINE_MASTER_KEY"
OLD_MASTER_KEY_ENV = "HOOKLINE_MASTER_KEY_OLD"


def new_master_key() -> str:
    """A fresh master key, in the form ``HOOKLINE_MASTER_KEY`` takes."""
    return Fernet.generate_key().decode()


def _fernet(name: str, value: str) -> Fernet:
    try:
        return Fernet(value.strip().encode())
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name} is not a master key: it must be 32 url-safe base64-encoded bytes "
            "(make one with `hookline new-master-key`)"
        ) from None


class KeyBox:
    """Seals and opens verification keys. Without a master key it stores them in the clear
    (and refuses to open sealed ones, saying which setting is missing)."""

    def __init__(self, master_key: str | None = None, old_master_keys: tuple[str, ...] = ()):
        self._sealer = _fernet(MASTER_KEY_ENV, master_key) if master_key else None
        readers = [self._sealer] if self._sealer else []
        readers += [_fernet(OLD_MASTER_KEY_ENV, k) for k in old_master_keys if k]
        self._opener = MultiFernet(readers) if readers else None
        self._opened: dict[str, str] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyBox:
        env = os.environ if env is None else env
        old = env.get(OLD_MASTER_KEY_ENV, "")
        return cls(env.get(MASTER_KEY_ENV) or None, (old,) if old else ())

    def seal(self, key: str) -> str:
        if self._sealer is None:
            return key
        return PREFIX + self._sealer.encrypt(key.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        found = self._opened.get(stored)
        if found is not None:
            return found
        if self._opener is None:
            raise ConfigError(
                f"verification keys in this database are encrypted; set {MASTER_KEY_ENV}"
            )
        try:
            plain = self._opener.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f"a verification key was encrypted with another master key; set "
                f"{MASTER_KEY_ENV} (and {OLD_MASTER_KEY_ENV} during a rotation) to the right one"
            ) from None
        # Opened keys are cached: the engine opens one per claimed delivery.
        if len(self._opened) > 10_000:
            self._opened.clear()
        self._opened[stored] = plain
        return plain

    def open_optional(self, stored: str | None) -> str | None:
        return None if stored is None else self.open(stored)


def masked(secret: str) -> str:
    """How a secret is shown back (API, dashboard, CLI): its last four characters only,
    and not even those of a short one, whose end would give away too much of it."""
    return "••••" + (secret[-4:] if len(secret) >= 16 else "")


def masked_header(name: str, value: str) -> str:
    """A header as shown back: ``masked``, but an Authorization header keeps its scheme
    in sight (``Bearer ••••pR5s``), and basic credentials (a password in base64) show
    nothing at all."""
    if name.lower() != "authorization":
        return masked(value)
    scheme, _, credentials = value.partition(" ")
    return f"{scheme} " + ("••••" if scheme.lower() == "basic" else masked(credentials))
