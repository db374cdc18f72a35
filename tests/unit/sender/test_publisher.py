"""The publisher's group commit: many callers share one transaction, yet one caller's bad
event fails only that caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hookline.exceptions import Conflict, StorageError, StorageUnavailable, TooLarge
from hookline.sender.publisher import Publisher
from hookline.store import NewEvent, Published
from tests.support.eventually import eventually


def _event(event_id: str) -> NewEvent:
    return NewEvent(id=event_id, event_type="order_completed", user_id="store-1", data="{}")


class FakeStore:
    """Publishes anything but the ids in ``conflicting``, all or nothing per call."""

    def __init__(
        self, conflicting: set[str] | None = None, broken: bool = False, most: int = 10**9
    ) -> None:
        self.most = most
        self.conflicting = conflicting or set()
        self.broken = broken
        self.gate: asyncio.Event | None = None
        self.calls: list[list[str]] = []
        self.stored: list[str] = []
        self.commits: list[list[str]] = []

    async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
        ids = [e.id for e in events]
        self.calls.append(ids)
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise ConnectionResetError("the database went away")
        if len(ids) > self.most:
            raise TooLarge(f"{len(ids)} deliveries; at most {self.most}")
        if self.conflicting & set(ids):
            raise Conflict("event_id already published with other data")
        self.stored.extend(ids)
        self.commits.append(ids)
        return [
            Published(e.id, e.event_type, e.user_id, 1.0, duplicate=False, deliveries=1)
            for e in events
        ]


async def test_callers_share_one_commit() -> None:
    store = FakeStore()
    woken = []
    publisher = Publisher(store, on_published=lambda: woken.append(1))  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(publisher.publish([_event(f"e{n}"), _event(f"e{n}b")]) for n in range(5))
    )
    assert store.calls == [[f"e{n}{s}" for n in range(5) for s in ("", "b")]]
    assert [[p.id for p in r] for r in results] == [[f"e{n}", f"e{n}b"] for n in range(5)]
    assert woken == [1]


async def test_a_conflicting_request_fails_alone() -> None:
    store = FakeStore(conflicting={"bad"})
    publisher = Publisher(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        publisher.publish([_event("a1"), _event("a2")]),
        publisher.publish([_event("b1"), _event("bad")]),
        publisher.publish([_event("c1")]),
        return_exceptions=True,
    )
    # One shared attempt, then halves until the bad request is alone.
    assert store.calls == [
        ["a1", "a2", "b1", "bad", "c1"],
        ["a1", "a2"],
        ["b1", "bad", "c1"],
        ["b1", "bad"],
        ["c1"],
    ]
    assert [p.id for p in results[0]] == ["a1", "a2"]  # type: ignore[union-attr]
    assert isinstance(results[1], Conflict)
    assert [p.id for p in results[2]] == ["c1"]  # type: ignore[union-attr]
    # Nothing of the conflicting request is stored, even its good event.
    assert store.stored == ["a1", "a2", "c1"]


async def test_requests_arriving_during_a_commit_go_in_the_next() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()
    publisher = Publisher(store)  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish([_event("first")]))
    while not store.calls:  # the first commit has started and is held at the gate
        await asyncio.sleep(0)
    later_tasks = [
        asyncio.create_task(publisher.publish([_event("x")])),
        asyncio.create_task(publisher.publish([_event("y")])),
    ]
    await asyncio.sleep(0)
    store.gate.set()
    later = await asyncio.gather(*later_tasks)
    await first
    assert store.calls == [["first"], ["x", "y"]]
    assert [r[0].id for r in later] == ["x", "y"]


async def test_an_unexpected_failure_reaches_every_caller() -> None:
    store = FakeStore(broken=True)
    publisher = Publisher(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        publisher.publish([_event("a")]),
        publisher.publish([_event("b")]),
        return_exceptions=True,
    )
    assert all(isinstance(r, ConnectionResetError) for r in results)
    assert store.calls == [["a", "b"], ["a"], ["b"]]
    # The publisher is usable again afterwards.
    store.broken = False
    assert [p.id for p in await publisher.publish([_event("c")])] == ["c"]


async def test_an_unexpected_failure_does_not_strand_the_next_commit() -> None:
    class FailsOnce(FakeStore):
        async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
            self.broken = not self.calls  # only the first commit fails
            return await super().publish(events)

    store = FailsOnce()
    store.gate = asyncio.Event()
    publisher = Publisher(store)  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish([_event("first")]))
    while not store.calls:  # the first commit has started and is held at the gate
        await asyncio.sleep(0)
    queued = asyncio.create_task(publisher.publish([_event("queued")]))
    await asyncio.sleep(0)
    store.gate.set()
    assert isinstance((await asyncio.gather(first, return_exceptions=True))[0], OSError)
    # The request queued behind the failed commit is answered without another publish.
    done, _ = await asyncio.wait({queued}, timeout=5)
    assert done, "the queued request was left waiting"
    assert [p.id for p in queued.result()] == ["queued"]


async def test_a_storage_error_is_retried_per_request_then_reported() -> None:
    error = StorageError("disk full")

    class Failing(FakeStore):
        async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
            self.calls.append([e.id for e in events])
            raise error

    store = Failing()
    publisher = Publisher(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        publisher.publish([_event("a")]), publisher.publish([_event("b")]), return_exceptions=True
    )
    assert results == [error, error]
    assert store.calls == [["a", "b"], ["a"], ["b"]]


async def test_a_database_gone_for_now_fails_the_group_at_once() -> None:
    error = StorageUnavailable("PostgreSQL unreachable")

    class Unavailable(FakeStore):
        async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
            self.calls.append([e.id for e in events])
            raise error

    store = Unavailable()
    publisher = Publisher(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(publisher.publish([_event(name)]) for name in "abcd"), return_exceptions=True
    )
    assert results == [error] * 4
    assert store.calls == [["a", "b", "c", "d"]]  # not tried again in parts


async def test_a_group_too_large_for_one_transaction_is_split_until_each_part_fits() -> None:
    store = FakeStore(most=3)
    store.gate = asyncio.Event()
    publisher = Publisher(store)  # type: ignore[arg-type]
    first = asyncio.create_task(publisher.publish([_event("first")]))
    await eventually(lambda: store.calls)  # the first commit waits at the gate ...
    sizes = [1, 1, 2, 1, 4, 1, 1]
    waiting = [
        asyncio.create_task(publisher.publish([_event(f"r{n}-{i}") for i in range(size)]))
        for n, size in enumerate(sizes)
    ]
    await asyncio.sleep(0)  # ... and each of these queues its request at its first step
    store.gate.set()
    await first
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[4], TooLarge)  # four events: too many by itself, fails alone
    assert all(not isinstance(r, Exception) for n, r in enumerate(results) if n != 4)
    assert max(len(commit) for commit in store.commits) == 3
    expected = [f"r{n}-{i}" for n, size in enumerate(sizes) if n != 4 for i in range(size)]
    assert store.stored == ["first", *expected]  # in order
