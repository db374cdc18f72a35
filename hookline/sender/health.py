"""Endpoint health: disable what keeps failing, probe it, enable it once it answers.

An endpoint is *failing* from its first failed attempt after a success until its next
success (``failing_since``, kept by ``Store.record``). One that has been failing for
longer than ``disable_after`` (5 days by default) is disabled, with a log line and a
metric; its pending deliveries stay where they are, in order. Every ``probe_interval``
the next ``probe_batch`` of them (those probed longest ago first, so each gets its turn
however many keep failing) get a signed test request, a sample event of a type they
subscribe to (the kind of test notification apps already get from Selz), a few at a
time and each with a short timeout. At the first 2xx an endpoint is enabled again and
its backlog goes out at once, in order.

Checks and probes run as separate tasks: a round of probes to endpoints that never
answer does not hold up disabling, key rotations or anything else.

The same check completes key rotations whose switch time has passed. Every engine runs
it; the store's updates are conditional, so two engines never disable or enable twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import orjson

from hookline.clock import Clock
from hookline.config import EngineSettings, RetryPolicy
from hookline.events import EVENT_TYPES, new_token
from hookline.exceptions import HooklineError
from hookline.samples import sample_data
from hookline.sender.attempt import attempt
from hookline.sender.transport import Transport
from hookline.store import Disabled, Job, Probe, Store

log = logging.getLogger("hookline.health")

T = TypeVar("T")

#: The user of probe requests: no real store's handlers wait behind them.
PROBE_USER = "hookline-probe"
_ONE_TRY = RetryPolicy(schedule=(0,))


class HealthObserver(Protocol):
    def endpoint_disabled(self, endpoint: Disabled) -> None: ...

    def endpoint_enabled(self, endpoint: Probe) -> None: ...


class HealthMonitor:
    def __init__(
        self,
        store: Store,
        settings: EngineSettings,
        transport: Transport | None,
        observers: Sequence[HealthObserver] = (),
        wake: Callable[[], None] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.transport = transport
        self.observers = observers
        self.wake = wake or (lambda: None)
        self.clock = clock if clock is not None else store.clock

    async def run_checks(self) -> None:
        await self._every(self.settings.health_interval, self.check, "the endpoint health check")

    async def run_probes(self) -> None:
        await self._every(self.settings.probe_interval, self.probe, "probing disabled endpoints")

    async def check(self) -> list[Disabled]:
        """Complete due key rotations; disable endpoints failing for too long."""
        await self.store.retire_switched_keys()
        disabled = await self.store.disable_failing_endpoints(self.settings.disable_after)
        for endpoint in disabled:
            log.warning(
                "endpoint %s (%s) has failed since %s and is disabled; it is probed every "
                "%g s and enabled again once it answers",
                endpoint.id,
                endpoint.url,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(endpoint.failing_since)),
                self.settings.probe_interval,
                extra={
                    "fields": {
                        "event": "endpoint_auto_disabled",
                        "endpoint_id": endpoint.id,
                        "app_id": endpoint.app_id,
                        "url": endpoint.url,
                        "failing_since": endpoint.failing_since,
                    }
                },
            )
            for observer in self.observers:
                _safely(observer.endpoint_disabled, endpoint)
        if disabled:
            self.wake()  # their operational events are due now
        return disabled

    async def probe(self) -> list[str]:
        """Probe the next batch of endpoints disabled for failing, a few at a time;
        return those enabled again."""
        if self.transport is None:
            return []
        endpoints = await self.store.endpoints_to_probe(self.settings.probe_batch)
        gate = asyncio.Semaphore(self.settings.probe_concurrency)

        async def probe_one(endpoint: Probe) -> str | None:
            async with gate:
                return await self._probe_one(endpoint)

        answered = await asyncio.gather(*(probe_one(e) for e in endpoints))
        enabled = [endpoint_id for endpoint_id in answered if endpoint_id is not None]
        if enabled:
            self.wake()
        return enabled

    async def _probe_one(self, endpoint: Probe) -> str | None:
        assert self.transport is not None
        job = probe_job(endpoint, self.settings.probe_timeout)
        result = await attempt(self.transport, job, _ONE_TRY, self.clock)
        if result.outcome != "delivered":
            log.info("probe of endpoint %s: %s", endpoint.id, result.error)
            return None
        if not await self.store.enable_probed_endpoint(endpoint.id):
            return None
        log.warning(
            "endpoint %s answered its probe and is enabled again; its backlog goes out now, "
            "in order",
            endpoint.id,
            extra={"fields": {"event": "endpoint_reenabled", "endpoint_id": endpoint.id}},
        )
        for observer in self.observers:
            _safely(observer.endpoint_enabled, endpoint)
        return endpoint.id

    async def _every(
        self, seconds: float, step: Callable[[], Awaitable[object]], what: str
    ) -> None:
        """Run ``step`` every ``seconds`` until cancelled; a failure is logged and waited
        out."""
        while True:
            try:
                await step()
            except HooklineError as exc:
                log.warning("%s failed, will try again: %s", what, exc)
            await self.clock.sleep(seconds)


def _safely(hook: Callable[[T], None], endpoint: T) -> None:
    """An observer that fails never stops the health check."""
    with contextlib.suppress(Exception):
        hook(endpoint)


def probe_job(endpoint: Probe, max_timeout: float) -> Job:
    """A signed sample event of a type the endpoint subscribes to; never stored. It waits
    for the endpoint's timeout, or ``max_timeout`` if that is shorter."""
    wanted = [t for t in endpoint.event_types if t in EVENT_TYPES]
    event_type = wanted[0] if wanted else "order_completed"
    return Job(
        delivery_id=0,
        token=new_token(),
        attempts=0,
        endpoint_id=endpoint.id,
        lane=PROBE_USER,
        user_id=PROBE_USER,
        app_id=endpoint.app_id,
        event_type=event_type,
        event_id="evt_probe_" + secrets.token_hex(8),
        data=orjson.dumps(sample_data(event_type)).decode(),
        url=endpoint.url,
        timeout=min(endpoint.timeout, max_timeout),
        keys=endpoint.keys,
        headers=endpoint.headers,
        client_cert=endpoint.client_cert,
        client_key=endpoint.client_key,
        endpoint_version=endpoint.version,
    )
