"""What the crash tests assert about the handler runs logged by ``receiver_app``."""

from __future__ import annotations

from tests.support.receiver import Run, check_no_overlap


def check_runs(runs: list[Run], acknowledged: set[str], killed: set[int]) -> None:
    """Every acknowledged event handled; per user one at a time and in order; an event run
    twice only when a killed process was running it (at least once, never more than that)."""
    check_no_overlap(runs)
    completed = {run.event_id for run in runs if run.end is not None}
    assert acknowledged <= completed, f"{len(acknowledged - completed)} acknowledged, never handled"

    by_event: dict[str, list[Run]] = {}
    for run in runs:
        by_event.setdefault(run.event_id, []).append(run)
    for event_id, event_runs in by_event.items():
        # All runs but the last belong to a process that was killed while running them.
        for earlier in event_runs[:-1]:
            assert earlier.pid in killed, f"{event_id} ran twice without a crash: {event_runs}"

    by_user: dict[str, list[int]] = {}
    for run in runs:
        seqs = by_user.setdefault(run.user_id, [])
        if not seqs or seqs[-1] != run.seq:  # a re-run repeats the event it interrupted
            seqs.append(run.seq)
    for user, seqs in by_user.items():
        assert seqs == sorted(seqs), f"{user} handled out of order: {seqs}"
