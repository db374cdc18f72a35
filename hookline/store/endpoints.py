"""Endpoints: their settings, health (disabled when failing, probed, enabled again),
recovery and statistics."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson

from hookline import rules
from hookline.exceptions import Conflict, LimitReached, NotFound, ValidationError
from hookline.store import operational
from hookline.store.apps import Apps
from hookline.store.base import (
    PageKey,
    new_id,
    new_verification_key,
    page_params,
    signing_keys,
    to_json,
)
from hookline.store.connector import Row
from hookline.store.publishing import announce, grow_lanes, lanes_of
from hookline.store.records import Disabled, Endpoint, Probe
from hookline.store.sealing import masked_header

#: Endpoint columns ``update_endpoint`` may change.
ENDPOINT_SETTINGS = (
    "url",
    "event_types",
    "timeout",
    "ordered",
    "max_in_flight",
    "enabled",
    "headers",
    "client_cert",
    "client_key",
    "rate_limit",
    "rate_limit_burst",
)
#: Of those, the ones that hold secrets (or go with one).
SEALED = ("headers", "client_cert", "client_key")


class Endpoints(Apps):
    """Extends ``Apps``: an endpoint is created under an app that must exist."""

    async def create_endpoint(
        self,
        app_id: str,
        *,
        url: str,
        event_types: list[str],
        timeout: float,
        ordered: bool = True,
        max_in_flight: int | None = None,
        headers: dict[str, str] | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        own_verification_key: bool = False,
        rate_limit: float | None = None,
        rate_limit_burst: int = 1,
    ) -> Endpoint:
        """Register an endpoint, within the limits on its settings and on how many
        endpoints one app may have (counted under a lock on the app, so creates racing
        each other cannot pass it). ``headers`` go with every delivery to it, and
        ``client_cert`` with ``client_key`` make its TLS mutual; the secrets are sealed at
        rest, and the rows returned show header values masked and no key. ``rate_limit``
        (deliveries a second, up to ``rate_limit_burst`` at once) holds across every
        worker."""
        rules.check_url_shape(url)
        event_types = rules.check_event_filter(event_types)
        rules.check_headers(headers or {})
        rules.check_client_tls(client_cert, client_key)
        self._check_endpoint_settings(timeout, max_in_flight)
        if rate_limit is not None:
            rate_limit = rules.check_rate_limit(rate_limit)
        rules.check_rate_burst(rate_limit_burst)
        await self.get_app(app_id)
        async with self.db.transaction() as tx:
            await tx.execute("lock_app", id=app_id)
            count = await tx.fetchrow("count_endpoints", app_id=app_id)
            most = self.limits.max_endpoints_per_app
            if count is not None and int(count["n"]) >= most:
                raise LimitReached(
                    f"the app has {count['n']} endpoints, the most one app may have "
                    f"(HOOKLINE_MAX_ENDPOINTS_PER_APP={most}); delete one it no longer uses"
                )
            row = await tx.fetchrow(
                "create_endpoint",
                id=new_id("ep"),
                app_id=app_id,
                url=url,
                event_types=to_json(event_types),
                timeout=timeout,
                ordered=int(ordered),
                max_in_flight=max_in_flight,
                headers=self._seal_headers(headers),
                client_cert=client_cert,
                client_key=self.keys.seal(client_key) if client_key else None,
                verification_key=(
                    self.keys.seal(new_verification_key()) if own_verification_key else None
                ),
                operational=0,
                rate_limit=rate_limit,
                rate_limit_burst=rate_limit_burst,
                now=self.clock.now(),
            )
        assert row is not None
        return self._shown(row)

    def _shown(self, row: Row) -> Endpoint:
        """An endpoint as it leaves the store for people (API, dashboard, CLI): the
        values of its headers masked. Only the engine's jobs carry them in full."""
        return Endpoint.from_row(
            row,
            headers={
                name: masked_header(name, value)
                for name, value in self._open_headers(row["headers"]).items()
            },
            # Its own verification keys are the app's to see, as the app's keys are.
            verification_key=self.keys.open_optional(row["verification_key"]),
            next_key=self.keys.open_optional(row["next_verification_key"]),
            # Its pause, only while it lasts (a claim moves it on for a paced endpoint).
            now=self.clock.now(),
        )

    def _check_endpoint_settings(self, timeout: float | None, max_in_flight: int | None) -> None:
        if timeout is not None and timeout > self.limits.max_timeout:
            raise ValidationError(
                f"timeout {timeout:g} s is above the longest allowed, "
                f"{self.limits.max_timeout:g} s (HOOKLINE_MAX_TIMEOUT)"
            )
        if max_in_flight is not None and max_in_flight > self.limits.max_in_flight:
            raise ValidationError(
                f"max_in_flight {max_in_flight} is above the most allowed, "
                f"{self.limits.max_in_flight} (HOOKLINE_MAX_IN_FLIGHT)"
            )

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        row = await self.db.fetchrow("get_endpoint", id=endpoint_id)
        if row is None:
            raise NotFound(f"no endpoint with id {endpoint_id!r}")
        return self._shown(row)

    async def list_endpoints(
        self, app_id: str, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[Endpoint]:
        rows = await self.db.fetch("list_endpoints", app_id=app_id, **page_params(after, limit))
        return [self._shown(row) for row in rows]

    async def update_endpoint(self, endpoint_id: str, **changes: Any) -> Endpoint:
        """Change the given settings (``url``, ``event_types``, ``timeout``, ``ordered``,
        ``max_in_flight``, ``enabled``, ``headers``, ``rate_limit`` (None: none),
        ``rate_limit_burst``) and keep the rest.

        ``headers`` changes the headers it names and keeps the others: a value sets one,
        None removes it (names ignore case). Their values are secrets no one can read
        back, so a change never needs the ones it leaves alone. ``client_cert`` and
        ``client_key`` change together (both None: no client certificate any more).

        Disabling (or enabling) by hand clears the health record, so the health check
        neither probes nor re-enables it. Enabled again, the endpoint sends its backlog
        at once, in order. A new ``ordered`` applies to deliveries published from now on.
        """
        if "url" in changes:
            rules.check_url_shape(changes["url"])
        if "event_types" in changes:
            changes["event_types"] = rules.check_event_filter(changes["event_types"])
        self._check_endpoint_settings(changes.get("timeout"), changes.get("max_in_flight"))
        if changes.get("rate_limit") is not None:
            changes["rate_limit"] = rules.check_rate_limit(changes["rate_limit"])
        if "rate_limit_burst" in changes:
            rules.check_rate_burst(changes["rate_limit_burst"])
        now = self.clock.now()
        async with self.db.transaction() as tx:
            if changes.get("enabled"):
                # Enabling wakes the lanes: take them first (see lock_lanes_of_endpoint).
                await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            row = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if row is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            if row["operational"] and ("url" in changes or "event_types" in changes):
                raise ValidationError(
                    "this is the app's operational endpoint: its URL is the app's "
                    "operator_url (change it there) and it gets hookline's own events only"
                )
            values = {k: row[k] for k in ENDPOINT_SETTINGS}
            # The sealed settings are merged and checked below, not taken as given.
            values.update(
                {k: v for k, v in changes.items() if k in ENDPOINT_SETTINGS and k not in SEALED}
            )
            if "headers" in changes:
                merged = _merge_headers(self._open_headers(row["headers"]), changes["headers"])
                values["headers"] = self._seal_headers(rules.check_headers(merged))
            if "client_cert" in changes or "client_key" in changes:
                cert, key = changes.get("client_cert"), changes.get("client_key")
                rules.check_client_tls(cert, key)
                values["client_cert"] = cert
                values["client_key"] = self.keys.seal(key) if key else None
            if "event_types" in changes:
                values["event_types"] = to_json(changes["event_types"])
            enabled = bool(values["enabled"])
            if "enabled" in changes and enabled != bool(row["enabled"]):
                values["failing_since"] = None
                values["disabled_reason"] = None if enabled else "disabled through the API"
            else:
                values["failing_since"] = row["failing_since"]
                values["disabled_reason"] = row["disabled_reason"]
            values["enabled"] = int(enabled)
            values["ordered"] = int(bool(values["ordered"]))
            updated = await tx.fetchrow("update_endpoint", id=endpoint_id, now=now, **values)
            if enabled and not row["enabled"]:
                await tx.execute("wake_endpoint_lanes", endpoint_id=endpoint_id, now=now)
        assert updated is not None
        return self._shown(updated)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries, their attempts and its lanes. The app's
        operational endpoint goes only with its operator_url (``set_operator_url``)."""
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            row = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if row is not None and row["operational"]:
                raise Conflict(
                    "this is the app's operational endpoint: set the app's operator_url to "
                    "null to remove it"
                )
            gone = await tx.fetchrow("delete_endpoint", id=endpoint_id)
        if gone is None:
            raise NotFound(f"no endpoint with id {endpoint_id!r}")

    async def recover_endpoint(self, endpoint_id: str, since: float) -> int:
        """Make every failed delivery of an endpoint created since ``since`` pending again,
        due now, with its own token and event_id. Each lane sends them in delivery order.
        Returns how many."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            moved = await tx.fetch(
                "recover_endpoint", endpoint_id=endpoint_id, since=since, now=now
            )
            await grow_lanes(tx, lanes_of(moved), now)
        return len(moved)

    async def endpoint_stats(self, endpoint_id: str, since: float, *, limit: int = 10_000) -> Row:
        """Success rate and latency percentiles of the endpoint's latest attempts since
        ``since`` (at most ``limit`` of them, so a busy endpoint costs a bounded read)."""
        attempts = await self.db.fetch(
            "endpoint_attempts", endpoint_id=endpoint_id, since=since, limit=limit
        )
        backlog = await self.db.fetchrow("endpoint_backlog", endpoint_id=endpoint_id)
        outcomes = Counter(a["outcome"] for a in attempts)
        latencies = sorted(float(a["latency_ms"]) for a in attempts if a["latency_ms"] is not None)
        return {
            "attempts": len(attempts),
            "outcomes": dict(outcomes),
            "success_rate": outcomes["delivered"] / len(attempts) if attempts else None,
            "latency_ms": {f"p{q}": _percentile(latencies, q / 100) for q in (50, 90, 99)},
            "pending": int(backlog["pending"]) if backlog else 0,
            "truncated": len(attempts) >= limit,
        }

    async def disable_failing_endpoints(self, failing_for: float) -> list[Disabled]:
        """Disable every endpoint that has been failing for longer than ``failing_for``
        seconds; return them. Their pending deliveries stay, in order."""
        now = self.clock.now()
        reason = (
            f"failing for more than {_duration(failing_for)}; hookline probes it "
            "and enables it again once it answers"
        )
        async with self.db.transaction() as tx:
            disabled = await tx.fetch(
                "disable_failing_endpoints", before=now - failing_for, now=now, reason=reason
            )
            await announce(
                tx, [operational.disabled_for_failing(row, reason, now) for row in disabled], now
            )
        return [Disabled.from_row(row) for row in disabled]

    async def endpoints_to_probe(self, limit: int = 100) -> list[Probe]:
        """Take the next ``limit`` endpoints the health check disabled for a probe, each
        with the keys that sign it: those probed longest ago first. Taking them moves
        them to the back, so however many keep failing, every one gets its turn."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            rows = await tx.fetch("endpoints_to_probe", limit=limit)
            if rows:
                await tx.execute("mark_probed", ids=to_json([r["id"] for r in rows]), now=now)
        return [
            Probe(
                id=row["id"],
                app_id=row["app_id"],
                url=row["url"],
                timeout=float(row["timeout"]),
                event_types=tuple(orjson.loads(row["event_types"])),
                keys=signing_keys(self._opened(row), now),
                # In full: a probe goes out with the endpoint's headers, as deliveries do.
                headers=tuple(self._open_headers(row["headers"]).items()),
                client_cert=row["client_cert"],
                client_key=self.keys.open_optional(row["client_key"]),
                version=float(row["endpoint_updated_at"]),
            )
            for row in rows
        ]

    async def enable_probed_endpoint(self, endpoint_id: str) -> bool:
        """Enable an endpoint that answered its probe; its backlog goes out at once."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            before = await tx.fetchrow("get_endpoint", id=endpoint_id)
            enabled = await tx.fetchrow("enable_probed_endpoint", id=endpoint_id, now=now)
            if enabled is not None:
                await tx.execute("wake_endpoint_lanes", endpoint_id=endpoint_id, now=now)
                if before is not None and before["failing_since"] is not None:
                    await announce(tx, [operational.enabled(before, now)], now)
        return enabled is not None


def _merge_headers(current: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """``current`` with ``changes`` made: a value sets a header, None removes it; a name
    replaces any other spelling of itself (HTTP header names ignore case)."""
    rules.check_headers({name: "-" for name in changes})  # names: shape, repeats, reserved
    merged = dict(current)
    for name, value in changes.items():
        for old in [k for k in merged if k.lower() == name.lower()]:
            del merged[old]
        if value is not None:
            merged[name] = value
    return merged


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:g} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"
