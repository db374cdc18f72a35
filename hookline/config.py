"""Small immutable settings objects, each with documented defaults and a strict parser."""

from __future__ import annotations

import math
import os
import random
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hookline.exceptions import ConfigError
from hookline.ratelimit import Rate

DEFAULT_DATABASE_URL = "sqlite:///./hookline.db"
DATABASE_URL_ENV = "HOOKLINE_DATABASE_URL"

#: Delays before each attempt: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
#: Delays before the retries of a delivery that failed while its endpoint answered other
#: requests: 0.5 s, 1 s, 2 s, then 5 s for every further one.
DEFAULT_QUICK: tuple[float, ...] = (0.5, 1, 2, 5)

#: Answers that say "slow down" rather than "this failed": they pace the endpoint and do
#: not use up the delivery's attempts.
THROTTLE_STATUSES = frozenset({429, 503})
#: An endpoint's pace (seconds between two requests to it) after it said "slow down":
#: at least PACE_MIN, doubled at each further one up to PACE_MAX; a good answer takes it
#: back towards unpaced (see ``Store.record``).
PACE_MIN = 0.1
PACE_MAX = 60.0


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use 1 or 0")


def parse_number(name: str, value: str) -> float:
    """A finite number of at least 0 (``nan`` and ``inf`` are refused: a timer or a
    count cannot be either)."""
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    if number < 0:
        raise ConfigError(f"{name}={value!r} must not be negative")
    return number


def parse_seconds(name: str, value: str) -> float:
    """A finite number of seconds above 0: a wait or a timeout of 0 would be none at all
    (aiohttp reads a timeout of 0 as "no timeout"; a loop would spin)."""
    seconds = parse_number(name, value)
    if seconds <= 0:
        raise ConfigError(f"{name}={value!r} must be more than 0 seconds")
    return seconds


def parse_ca_bundle(name: str, value: str) -> str | None:
    """A PEM file of CA certificates, read once here so that a wrong path stops the
    process at its start, in one line, rather than its first delivery."""
    if not value:
        return None
    try:
        ssl.create_default_context().load_verify_locations(cafile=value)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{name}={value}: not a readable file of PEM certificates ({exc})"
        ) from None
    return value


#: The HTTP clients a delivery can go through (see ``hookline.sender.transport``).
TRANSPORTS = ("reqwest", "aiohttp")


def parse_transport(name: str, value: str) -> str:
    if value not in TRANSPORTS:
        raise ConfigError(f"{name}={value!r} is not a transport; use {' or '.join(TRANSPORTS)}")
    return value


def parse_count(name: str, value: str) -> int:
    """A whole number of at least 1 (a fraction is rounded down first)."""
    count = int(parse_number(name, value))
    if count < 1:
        raise ConfigError(f"{name}={value!r} must be at least 1")
    return count


#: A settings object's environment: attribute -> (variable, parser of the variable's
#: text); every parser names the variable in its error, so a bad value says where it
#: came from.
EnvTable = Mapping[str, tuple[str, Callable[[str, str], object]]]


def values_from_env(table: EnvTable, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The attributes of ``table`` whose variable is set in ``env`` (default: the
    process's environment), parsed."""
    env = os.environ if env is None else env
    return {name: parse(key, env[key]) for name, (key, parse) in table.items() if key in env}


#: The least an admin token must have: long enough, and not a word repeated.
ADMIN_TOKEN_MIN_LENGTH = 24
ADMIN_TOKEN_MIN_DISTINCT = 10


def check_admin_token(token: str) -> str:
    """Refuse an admin token that could be guessed: it opens every app's data, and the
    API and the dashboard sign-in take guesses (throttled, but from many addresses)."""
    if len(token) < ADMIN_TOKEN_MIN_LENGTH or len(set(token)) < ADMIN_TOKEN_MIN_DISTINCT:
        raise ConfigError(
            f"HOOKLINE_ADMIN_TOKEN is too weak (at least {ADMIN_TOKEN_MIN_LENGTH} characters, "
            f"{ADMIN_TOKEN_MIN_DISTINCT} of them different); make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a failed delivery again.

    ``schedule[i]`` is the delay before attempt ``i + 1``; after the last one the delivery
    ends as failed. Each delay is spread by ±``jitter`` (a fraction) so that a recovering
    endpoint is not hit by every retry at the same second. A ``Retry-After`` answer is
    honoured up to ``max_retry_after`` seconds: it can lengthen a delay, never shorten it.

    The schedule is for an endpoint that fails as a whole. A delivery that failed while
    its endpoint answered other requests with a 2xx (since this delivery's previous
    attempt, or within ``answered_window`` seconds before its first) is retried after
    ``quick`` instead (its last delay repeated), never later than the schedule says: on
    an ordered endpoint its whole lane waits for it. Either way each attempt counts.
    """

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1
    max_retry_after: float = 3600.0
    quick: tuple[float, ...] = DEFAULT_QUICK
    answered_window: float = 60.0

    def __post_init__(self) -> None:
        if not self.schedule:
            raise ConfigError("a retry schedule needs at least one attempt")
        if any(d < 0 for d in self.schedule) or any(d < 0 for d in self.quick):
            raise ConfigError("retry delays must not be negative")
        if not self.quick:
            raise ConfigError("quick retries need at least one delay")
        if not 0 <= self.jitter < 1:
            raise ConfigError("jitter is a fraction between 0 and 1")

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after ``attempts_made`` failures; None: give up."""
        if attempts_made >= len(self.schedule):
            return None
        base = self.schedule[attempts_made]
        delay = base * (1 + random.uniform(-self.jitter, self.jitter)) if base else 0.0
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def quick_delay(self, attempts_made: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt after ``attempts_made`` failures, when the
        endpoint answers other requests (with jitter; ``Retry-After`` still lengthens)."""
        base = self.quick[min(attempts_made, len(self.quick)) - 1]
        delay = base * (1 + random.uniform(-self.jitter, self.jitter))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    @classmethod
    def parse(cls, text: str) -> RetryPolicy:
        """Parse ``"0,5,300"`` (seconds) into a policy; used for ``HOOKLINE_RETRY_SCHEDULE``."""
        try:
            schedule = tuple(float(part) for part in text.split(",") if part.strip())
            if not all(math.isfinite(delay) for delay in schedule):
                raise ValueError(text)
        except ValueError:
            raise ConfigError(
                f"retry schedule {text!r} must be comma-separated seconds, e.g. 0,5,300"
            ) from None
        return cls(schedule=schedule)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the delivery engine behaves; each value has an environment variable."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Allow deliveries to loopback, private and link-local addresses (tests, intranets).
    allow_private_targets: bool = False
    #: Deliveries sent at once by one engine, all endpoints together (its slots).
    concurrency: int = 512
    #: Deliveries in flight at once to one endpoint, unless the endpoint says otherwise.
    endpoint_max_in_flight: int = 64
    #: Deliveries in flight at once for one app, all its endpoints and engines together;
    #: never more than half the slots (see ``app_cap``).
    app_max_in_flight: int = 128
    #: Extra seconds a claim is held beyond the endpoint's timeout before another worker
    #: may take it over (the process that claimed it is presumed dead).
    lease_margin: float = 15.0
    #: How often the engine looks for due retries when nothing wakes it.
    poll_interval: float = 0.5
    #: Largest body accepted for one event's data, in bytes.
    max_event_bytes: int = 256 * 1024
    #: Days to keep events whose deliveries all ended (delivered or failed), with their
    #: deliveries and attempts; 0 keeps everything.
    retention_days: float = 30.0
    #: Seconds between two prunes by one engine (each prunes in small batches).
    prune_interval: float = 3600.0
    #: Seconds an endpoint may fail without a single success before it is disabled (it
    #: is then probed, and enabled again once it answers).
    disable_after: float = 5 * 86400.0
    #: Seconds an endpoint must have been failing before its next 2xx is announced as
    #: ``endpoint.recovering`` to its app's operator_url (shorter failures are blips).
    recovering_after: float = 300.0
    #: Seconds between two probes of the endpoints disabled for failing.
    probe_interval: float = 300.0
    #: Seconds between two health checks (failing endpoints, finished key rotations).
    health_interval: float = 30.0
    #: Probes sent at once, and the longest a probe waits for its answer (or the
    #: endpoint's own timeout, if shorter).
    probe_concurrency: int = 8
    probe_timeout: float = 5.0
    #: Endpoints probed per round; those probed longest ago go first.
    probe_batch: int = 100
    #: A PEM file of CAs trusted besides the system's, for endpoints whose certificates
    #: a private CA signed (their own, or an intranet's).
    ca_bundle: str | None = None
    #: The HTTP client of deliveries: ``reqwest`` (pyreqwest, the faster) or ``aiohttp``
    #: (OpenSSL's TLS, for endpoints that only speak what rustls refuses, such as TLS 1.0).
    transport: str = "reqwest"

    def __post_init__(self) -> None:
        _require_positive(self, _ENGINE_SECONDS)
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}")

    @property
    def app_cap(self) -> int:
        """The in-flight cap of one app: ``app_max_in_flight``, but never more than half
        the slots, so that one app's dead endpoints cannot hold all of them. When several
        apps have work, each is held to its fair share of the slots besides."""
        return max(1, min(self.app_max_in_flight, self.concurrency // 2))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> EngineSettings:
        """Settings from ``HOOKLINE_*`` variables (see ``ENGINE_ENV``); ``overrides`` that
        are not None win (command-line options)."""
        values = values_from_env(ENGINE_ENV, env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one app may ask of the store; each value has an environment variable.

    The store enforces them, so the API, the CLI and code publishing directly all meet
    the same bounds with the same messages.
    """

    #: Endpoints one app may register.
    max_endpoints_per_app: int = 100
    #: The largest ``max_in_flight`` an endpoint may ask for (the engine also holds every
    #: endpoint to its app's cap, which is below its slots).
    max_in_flight: int = 128
    #: The longest ``timeout`` an endpoint may ask for, in seconds; older endpoints with a
    #: longer one are held to it.
    max_timeout: float = 30.0
    #: Deliveries one publish may create (its events times the endpoints each reaches);
    #: a larger one is refused before anything is written.
    max_deliveries_per_publish: int = 5000
    #: Attempts kept in a delivery's log: the first and the last few; those between are
    #: dropped and counted.
    attempt_log_head: int = 5
    attempt_log_tail: int = 20

    def __post_init__(self) -> None:
        _require_positive(self, ("max_timeout",))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        return cls(**values_from_env(LIMITS_ENV, env))  # type: ignore[arg-type]


LIMITS_ENV: EnvTable = {
    "max_endpoints_per_app": ("HOOKLINE_MAX_ENDPOINTS_PER_APP", parse_count),
    "max_in_flight": ("HOOKLINE_MAX_IN_FLIGHT", parse_count),
    "max_timeout": ("HOOKLINE_MAX_TIMEOUT", parse_seconds),
    "max_deliveries_per_publish": ("HOOKLINE_MAX_DELIVERIES_PER_PUBLISH", parse_count),
    "attempt_log_head": ("HOOKLINE_ATTEMPT_LOG_HEAD", parse_count),
    "attempt_log_tail": ("HOOKLINE_ATTEMPT_LOG_TAIL", parse_count),
}


#: Durations of the engine that must be more than 0 (see ``parse_seconds``).
_ENGINE_SECONDS = ("poll_interval", "probe_interval", "health_interval", "probe_timeout")


def _require_positive(settings: object, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name} must be more than 0 seconds")


ENGINE_ENV: EnvTable = {
    "retry": ("HOOKLINE_RETRY_SCHEDULE", lambda _, value: RetryPolicy.parse(value)),
    "allow_private_targets": ("HOOKLINE_ALLOW_PRIVATE_TARGETS", parse_bool),
    "concurrency": ("HOOKLINE_CONCURRENCY", parse_count),
    "endpoint_max_in_flight": ("HOOKLINE_ENDPOINT_MAX_IN_FLIGHT", parse_count),
    "app_max_in_flight": ("HOOKLINE_APP_MAX_IN_FLIGHT", parse_count),
    "lease_margin": ("HOOKLINE_LEASE_MARGIN", parse_number),
    "poll_interval": ("HOOKLINE_POLL_INTERVAL", parse_seconds),
    "retention_days": ("HOOKLINE_RETENTION_DAYS", parse_number),
    "disable_after": ("HOOKLINE_DISABLE_AFTER", parse_number),
    "recovering_after": ("HOOKLINE_RECOVERING_AFTER", parse_number),
    "probe_interval": ("HOOKLINE_PROBE_INTERVAL", parse_seconds),
    "health_interval": ("HOOKLINE_HEALTH_INTERVAL", parse_seconds),
    "probe_concurrency": ("HOOKLINE_PROBE_CONCURRENCY", parse_count),
    "probe_timeout": ("HOOKLINE_PROBE_TIMEOUT", parse_seconds),
    "ca_bundle": ("HOOKLINE_CA_BUNDLE", lambda name, value: parse_ca_bundle(name, value)),
    "transport": ("HOOKLINE_TRANSPORT", lambda name, value: parse_transport(name, value)),
}


@dataclass(frozen=True, slots=True)
class RateLimits:
    """How often a client may do what, in one ``serve`` process (each process counts on
    its own: see ``hookline.ratelimit``). Each is ``Rate(count, period)``: a burst of
    ``count``, then one more every ``period / count`` seconds; None is no limit.

    The per-app limits apply to an app's own API key (API and dashboard alike), not to
    the admin token: they keep one tenant from crowding out the others, and the
    operator's own scripts (a bulk recover after an outage) should not wait on them.
    """

    #: Failed authentications (API bearer token, dashboard sign-in) per client address
    #: (an IPv6 client's /64). Successes never count.
    auth_failures: Rate | None = Rate(10, 60)
    #: Test notifications (``POST .../endpoints/{id}/test``) per app.
    tests: Rate | None = Rate(10, 60)
    #: Recover calls (``POST .../endpoints/{id}/recover``) per app.
    recovers: Rate | None = Rate(10, 3600)
    #: Endpoints created per app.
    new_endpoints: Rate | None = Rate(100, 3600)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateLimits:
        """Limits from ``HOOKLINE_RATE_*`` (see ``RATE_ENV``): ``10/minute``, ``off``."""
        env = os.environ if env is None else env
        return cls(
            **{name: Rate.parse(key, env[key]) for name, key in RATE_ENV.items() if key in env}
        )


RATE_ENV: dict[str, str] = {
    "auth_failures": "HOOKLINE_RATE_AUTH_FAILURES",
    "tests": "HOOKLINE_RATE_TESTS",
    "recovers": "HOOKLINE_RATE_RECOVERS",
    "new_endpoints": "HOOKLINE_RATE_NEW_ENDPOINTS",
}


def database_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return explicit or env.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def redact_url(url: str) -> str:
    """A database URL without its password, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not even a URL (an unclosed "[" in the host, say)
        return "***@" + url.rsplit("@", 1)[1] if "@" in url else url
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


#: A PostgreSQL schema hookline's tables may live in (``?schema=`` of a database URL,
#: ``hookline.publish(schema=...)``): an unquoted identifier, so that it reads the same in
#: the URL, in ``search_path`` and in ``psql``, and may stand in a statement as it is.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL whose host or port cannot be parsed, before the driver
    tries it (asyncpg raises a bare ValueError or OverflowError for those). Each host
    of a multi-host URL (``postgresql://h1:5432,h2:5432/db``) is checked on its own."""
    try:
        hosts = urlsplit(url).netloc.rpartition("@")[2]
        for host in hosts.split(","):
            urlsplit(f"//{host}").port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise ConfigError(
            f"bad PostgreSQL URL {redact_url(url)!r}: {exc}; "
            "write it as postgresql://user:password@host:5432/database"
        ) from None


def check_sqlite_path(path: str, *, create: bool, missing_hint: str) -> None:
    """Refuse a SQLite database path that would not open the database meant.

    SQLite creates a missing file on connect, so a typo in a path silently becomes a new,
    empty database. So: the directory must exist (hookline never creates one), and the
    file too unless ``create`` (only the commands that set a database up may make one).
    ``missing_hint`` says how to make the file when it is missing.
    """
    if path in ("", ":memory:") or path.startswith("file:"):
        return
    file = Path(path)
    parent = file.parent
    if not parent.exists():
        raise ConfigError(
            f"SQLite database {path}: the directory {parent} does not exist; "
            "create it or correct the path (hookline creates no directories)"
        )
    if not parent.is_dir():
        raise ConfigError(f"SQLite database {path}: {parent} is not a directory; correct the path")
    if file.is_dir():
        raise ConfigError(f"SQLite database {path} is a directory; name a file in it")
    if not create and not file.exists():
        raise ConfigError(f"no SQLite database at {path}; correct the path, or {missing_hint}")
