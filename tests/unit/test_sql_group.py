"""Group commit: callers share a transaction, each gets its own answer, and a failed group
is split until the failure is alone, except when the database is gone for now."""

from __future__ import annotations

import asyncio

import pytest

from hookline.exceptions import StorageError, StorageUnavailable
from hookline.sql.group import GroupCommit


class Database:
    """Commits groups of names; fails any group holding a name in ``bad``."""

    def __init__(self, bad: set[str] | None = None, error: Exception | None = None) -> None:
        self.bad = bad or set()
        self.error = error
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0
        self.groups: list[list[str]] = []
        self.stored: list[str] = []

    async def commit(self, group: list[str]) -> list[str]:
        self.groups.append(list(group))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0)
            if self.gate is not None:
                await self.gate.wait()
            if self.error is not None:
                raise self.error
            if self.bad & set(group):
                raise StorageError(f"cannot store {sorted(self.bad & set(group))}")
            self.stored.extend(group)
            return [name.upper() for name in group]
        finally:
            self.running -= 1


async def _held(db: Database, group: GroupCommit[str, str], first: str) -> asyncio.Task[str]:
    """Submit ``first`` and return once its commit has started and waits at the gate."""
    db.gate = asyncio.Event()
    task = asyncio.create_task(group.submit(first))
    while not db.groups:
        await asyncio.sleep(0)
    return task


async def test_callers_share_one_commit_and_each_gets_its_result() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=100)
    results = await asyncio.gather(*(group.submit(name) for name in "abcde"))
    assert results == ["A", "B", "C", "D", "E"]
    assert db.groups == [["a", "b", "c", "d", "e"]]


async def test_what_arrives_during_a_commit_goes_in_the_next_up_to_the_limit() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=3)
    first = await _held(db, group, "first")
    later = [asyncio.create_task(group.submit(name)) for name in "abcdefg"]
    await asyncio.sleep(0)
    assert db.gate is not None
    db.gate.set()
    assert await asyncio.gather(first, *later) == ["FIRST", *"ABCDEFG"]
    assert db.groups == [["first"], ["a", "b", "c"], ["d", "e", "f"], ["g"]]


async def test_a_group_is_limited_by_weight_and_a_heavy_entry_goes_alone() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=4, weight=len)
    first = await _held(db, group, "x")
    later = [asyncio.create_task(group.submit(name)) for name in ("aa", "bb", "c", "ddddd", "e")]
    await asyncio.sleep(0)
    assert db.gate is not None
    db.gate.set()
    await asyncio.gather(first, *later)
    assert db.groups == [["x"], ["aa", "bb"], ["c"], ["ddddd"], ["e"]]


async def test_a_failing_entry_is_isolated_by_halves_and_the_others_are_stored() -> None:
    db = Database(bad={"f"})
    group = GroupCommit(db.commit, max_group=100)
    names = list("abcdefgh")
    results = await asyncio.gather(*(group.submit(n) for n in names), return_exceptions=True)
    assert isinstance(results[5], StorageError) and "['f']" in str(results[5])
    assert [r for n, r in zip(names, results, strict=True) if n != "f"] == list("ABCDEGH")
    assert db.stored == list("abcdegh")  # in order
    assert db.groups == [
        list("abcdefgh"),
        list("abcd"),
        list("efgh"),
        list("ef"),
        ["e"],
        ["f"],
        list("gh"),
    ]


async def test_a_database_gone_for_now_fails_the_whole_group_at_once() -> None:
    error = StorageUnavailable("PostgreSQL unreachable")
    db = Database(error=error)
    group = GroupCommit(db.commit, max_group=100)
    results = await asyncio.gather(*(group.submit(n) for n in "abcd"), return_exceptions=True)
    assert results == [error] * 4
    assert db.groups == [list("abcd")]


async def test_several_flushers_commit_groups_at_once() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=2, flushers=3)
    first = await _held(db, group, "first")
    later = [asyncio.create_task(group.submit(name)) for name in "abcdefgh"]
    while db.running < 3:  # two more groups started while the first waits
        await asyncio.sleep(0)
    assert db.gate is not None
    db.gate.set()
    assert await asyncio.gather(first, *later) == ["FIRST", *"ABCDEFGH"]
    assert db.most_running == 3
    assert sorted(db.stored) == sorted(["first", *"abcdefgh"])


async def test_drain_returns_once_everything_is_answered() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=2)
    first = await _held(db, group, "first")
    later = [asyncio.create_task(group.submit(name)) for name in "abc"]
    await asyncio.sleep(0)
    draining = asyncio.create_task(group.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    assert db.gate is not None
    db.gate.set()
    await draining
    assert all(task.done() for task in (first, *later))
    assert db.stored == ["first", "a", "b", "c"]


async def test_a_cancelled_flusher_leaves_nobody_waiting() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=1)
    first = await _held(db, group, "first")
    queued = asyncio.create_task(group.submit("queued"))
    await asyncio.sleep(0)
    for task in asyncio.all_tasks():
        if task.get_name() == "hookline-group-commit":
            task.cancel()
    results = await asyncio.gather(first, queued, return_exceptions=True)
    assert all(isinstance(r, StorageUnavailable) for r in results)


async def test_an_idle_group_commit_holds_no_task_and_starts_again() -> None:
    db = Database()
    group = GroupCommit(db.commit, max_group=10)
    assert await group.submit("a") == "A"
    await group.drain()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "hookline-group-commit"]
    assert await group.submit("b") == "B"


@pytest.mark.parametrize("error", [LookupError("lease lost"), ValueError("bug")], ids=repr)
async def test_any_error_but_unavailable_is_an_entrys_own(error: Exception) -> None:
    async def commit(group: list[str]) -> list[str]:
        if "bad" in group:
            raise error
        return group

    group = GroupCommit(commit, max_group=10)
    results = await asyncio.gather(group.submit("ok"), group.submit("bad"), return_exceptions=True)
    assert results == ["ok", error]
