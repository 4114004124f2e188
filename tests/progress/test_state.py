"""ProgressState folding event sequences as the transfers publish them (explicit ``at`` values)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from docker_image_pusher.progress.events import (
    ConcurrencyAdjusted,
    ImagePlanned,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from docker_image_pusher.progress.state import ProgressState

MiB = 1 << 20
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def test_resumed_download_counts_bytes_on_disk_but_not_as_transferred() -> None:
    state = ProgressState()
    state.apply(ImagePlanned("reg/app:1", 1, 10, at=0.0))
    state.apply(TransferStarted(A, 10, resumed_from=4, at=1.0))
    snap = state.snapshot(now=1.0)
    assert (snap.bytes_done, snap.bytes_transferred, snap.blobs_active) == (4, 0, 1)
    assert snap.percent == pytest.approx(40.0)
    state.apply(TransferProgress(A, 6, at=2.0))
    state.apply(TransferFinished(A, 6, "downloaded", at=2.0))
    snap = state.snapshot(now=2.0)
    assert (snap.bytes_done, snap.bytes_transferred) == (10, 6)
    assert (snap.blobs_completed, snap.blobs_active, snap.blobs_total) == (1, 0, 1)
    assert snap.percent == 100.0 and snap.eta == 0.0
    assert snap.outcomes["downloaded"] == 1 and snap.active == ()


def test_negative_delta_takes_back_resumed_bytes() -> None:
    state = ProgressState()
    state.apply(TransferStarted(A, 10, resumed_from=5, at=0.0))
    state.apply(TransferProgress(A, -5, at=0.1))  # the partial file was thrown away
    snap = state.snapshot(now=0.1)
    assert (snap.bytes_done, snap.bytes_transferred) == (0, 0)
    assert snap.active[0].done == 0
    state.apply(TransferProgress(A, 10, at=0.2))
    state.apply(TransferFinished(A, 10, "downloaded", at=0.2))
    snap = state.snapshot(now=0.2)
    assert (snap.bytes_done, snap.bytes_transferred, snap.bytes_total) == (10, 10, 10)


def test_temporary_failure_then_resume_then_success() -> None:
    state = ProgressState()
    state.apply(ImagePlanned("reg/app:1", 2, 30, at=0.0))
    state.apply(TransferStarted(A, 10, at=0.0))
    state.apply(TransferProgress(A, 3, at=0.5))
    state.apply(TransferFailed(A, "connection reset", temporary=True, at=1.0))
    snap = state.snapshot(now=1.0)
    assert (snap.blobs_active, snap.blobs_retrying, snap.blobs_failed, snap.retries) == (0, 1, 0, 1)
    assert [t.status for t in snap.active] == ["retrying"]
    state.apply(TransferStarted(A, 10, resumed_from=3, at=2.0))
    snap = state.snapshot(now=2.0)
    assert (snap.blobs_active, snap.blobs_retrying, snap.bytes_done) == (1, 0, 3)  # not counted twice
    state.apply(TransferProgress(A, 7, at=2.5))
    state.apply(TransferFinished(A, 7, "downloaded", at=2.5))
    task = next(t for t in state.tasks() if t.digest == A)
    assert (task.status, task.outcome, task.attempts) == ("done", "downloaded", 2)
    assert (task.started, task.finished) == (0.0, 2.5)
    summary = state.summary(now=3.0)
    assert summary["failed"] == 0 and summary["retries"] == 1
    assert summary["bytes"] == 10 and summary["blobs"]["completed"] == 1 and summary["blobs"]["total"] == 2


def test_upload_restarted_from_scratch_counts_all_sent_bytes() -> None:
    state = ProgressState()
    state.apply(TransferStarted(B, 10, at=0.0))
    state.apply(TransferProgress(B, 6, at=0.5))
    state.apply(TransferFailed(B, "503 Service Unavailable", temporary=True, status=503, at=1.0))
    state.apply(TransferStarted(B, 10, at=1.5))
    assert state.snapshot(now=1.5).bytes_done == 0
    state.apply(TransferProgress(B, 10, at=2.0))
    state.apply(TransferFinished(B, 10, "uploaded", at=2.0))
    snap = state.snapshot(now=2.0)
    assert (snap.bytes_done, snap.bytes_transferred, snap.retries) == (10, 16, 1)


def test_non_temporary_failure_counts_as_failed() -> None:
    state = ProgressState()
    state.apply(ImagePlanned("reg/app:1", 2, 20, at=0.0))
    state.apply(TransferStarted(A, 10, at=0.0))
    state.apply(TransferStarted(B, 10, at=0.0))
    state.apply(TransferProgress(A, 4, at=0.5))
    state.apply(TransferFailed(A, "digest mismatch", temporary=False, at=1.0))
    state.apply(TransferProgress(B, 10, at=1.0))
    state.apply(TransferFinished(B, 10, "uploaded", at=1.0))
    snap = state.snapshot(now=1.0)
    assert (snap.blobs_failed, snap.blobs_active, snap.blobs_completed, snap.retries) == (1, 0, 1, 0)
    failed = next(t for t in state.tasks() if t.digest == A)
    assert (failed.status, failed.message) == ("failed", "digest mismatch")
    assert state.summary(now=1.0)["failed"] == 1 and state.summary(now=1.0)["blobs"]["failed"] == 1


def test_skipped_and_mounted_blobs_count_towards_percent_by_estimate() -> None:
    state = ProgressState()
    state.apply(ImagePlanned("reg/app:1", 4, 40, at=0.0))
    state.apply(TransferFinished(A, 0, "skipped", at=0.1))
    state.apply(TransferFinished(B, 0, "mounted", at=0.1))
    state.apply(TransferStarted(C, 10, at=0.2))
    state.apply(TransferProgress(C, 5, at=0.3))
    # 30 planned bytes belong to the 3 blobs whose size nobody announced: 10 each, 2 of them done
    assert state.snapshot(now=0.3).percent == pytest.approx(100.0 * (5 + 20) / 40)
    state.apply(TransferProgress(C, 5, at=0.4))
    state.apply(TransferFinished(C, 10, "uploaded", at=0.4))
    state.apply(TransferFinished("sha256:" + "d" * 64, 0, "skipped", at=0.5))
    snap = state.snapshot(now=0.5)
    assert snap.percent == 100.0 and snap.eta == 0.0 and snap.blobs_completed == 4
    assert dict(snap.outcomes) == {
        "downloaded": 0,
        "cached": 0,
        "uploaded": 1,
        "skipped": 2,
        "mounted": 1,
        "extracted": 0,
    }


def test_totals_grow_without_a_plan_and_unknown_outcomes_are_kept() -> None:
    state = ProgressState()
    state.apply(TransferStarted(A, 10, at=0.0))
    state.apply(TransferProgress(A, 10, at=0.1))
    state.apply(TransferFinished(A, 10, "saved", at=0.1))
    state.apply(TransferStarted(B, 30, at=0.1))
    snap = state.snapshot(now=0.1)
    assert (snap.blobs_total, snap.bytes_total, snap.outcomes["saved"]) == (2, 40, 1)
    assert snap.percent == pytest.approx(25.0)


def test_concurrency_adjustments_and_stats_json() -> None:
    state = ProgressState()
    state.apply(ImagePlanned("reg/app:1", 1, 10, at=100.0))
    assert state.snapshot(now=100.0).concurrency is None
    state.apply(ConcurrencyAdjusted(4, 6, "throughput rose", throughput=2e6, at=102.5))
    state.apply(ConcurrencyAdjusted(6, 3, "registry pushed back (429)", at=104.0))
    snap = state.snapshot(now=105.0)
    assert (snap.initial_concurrency, snap.concurrency, snap.adjustments) == (4, 3, 2)
    assert snap.last_adjustment is not None and snap.last_adjustment.reason == "registry pushed back (429)"
    stats = state.stats_json({"operation": "push", "target": "reg2"}, now=105.0)
    assert stats["operation"] == "push" and stats["target"] == "reg2" and stats["image"] == "reg/app:1"
    assert stats["elapsed"] == pytest.approx(5.0)
    assert stats["concurrency"] == {
        "initial": 4,
        "final": 3,
        "adjustments": [
            {"t": 2.5, "old": 4, "new": 6, "reason": "throughput rose", "throughput": 2e6},
            {"t": 4.0, "old": 6, "new": 3, "reason": "registry pushed back (429)", "throughput": 0.0},
        ],
    }
    assert set(stats) >= {"operation", "image", "elapsed", "bytes", "speed", "blobs", "retries", "concurrency"}
    merged = state.stats_json({"concurrency": {"manager": "adaptive", "final": 5}}, now=105.0)["concurrency"]
    assert (merged["manager"], merged["final"], merged["initial"], len(merged["adjustments"])) == ("adaptive", 5, 4, 2)


def test_set_concurrency_gives_the_initial_value() -> None:
    state = ProgressState(concurrency=8)
    assert state.snapshot(now=0.0).concurrency == 8
    state.set_concurrency(5)
    state.apply(ConcurrencyAdjusted(5, 7, "probe", at=1.0))
    state.set_concurrency(2)  # too late: an adjustment already happened
    summary = state.summary(now=1.0)
    assert summary["concurrency"] == {"initial": 5, "final": 7} and summary["adjustments"] == 1


def test_average_and_current_speed_and_eta() -> None:
    state = ProgressState(window=3.0)
    state.apply(ImagePlanned("reg/app:1", 1, 100 * MiB, at=0.0))
    state.apply(TransferStarted(A, 100 * MiB, at=0.0))
    for i in range(20):  # 1 MiB every 0.5 s from t=0.4 to t=9.9: 2 MiB/s
        state.apply(TransferProgress(A, MiB, at=0.5 * (i + 1) - 0.1))
    snap = state.snapshot(now=10.0)
    assert snap.average_speed == pytest.approx(2 * MiB, rel=0.06)
    assert snap.current_speed == pytest.approx(2 * MiB, rel=0.1)
    assert snap.eta == pytest.approx(80 * MiB / snap.current_speed)
    for i in range(16):  # then 8 MiB/s for 2 s
        state.apply(TransferProgress(A, MiB, at=10.0 + 0.125 * (i + 1)))
    snap = state.snapshot(now=12.0)
    assert snap.current_speed > 5 * MiB > snap.average_speed
    snap = state.snapshot(now=30.0)  # stalled: nothing in the window, the ETA falls back to the average
    assert snap.current_speed == 0.0
    assert snap.eta == pytest.approx((100 - 36) * MiB / snap.average_speed)
    assert ProgressState().snapshot(now=1.0).eta is None  # nothing known yet


def test_finish_freezes_the_clock() -> None:
    state = ProgressState()
    state.apply(TransferStarted(A, 10, at=0.0))
    state.apply(TransferProgress(A, 10, at=2.0))
    state.finish(at=4.0)
    state.finish(at=9.0)  # only the first counts
    snap = state.snapshot()
    assert snap.finished and snap.runtime == 4.0 and snap.at == 4.0
    assert state.summary()["seconds"] == 4.0


def test_snapshot_is_immutable() -> None:
    state = ProgressState()
    state.apply(TransferStarted(A, 10, at=0.0))
    snap = state.snapshot(now=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.percent = 5.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.outcomes["uploaded"] = 3  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.active[0].done = 5  # type: ignore[misc]
    state.apply(TransferProgress(A, 7, at=1.0))
    assert snap.active[0].done == 0 and snap.bytes_done == 0


def test_events_for_unannounced_blobs_do_not_break_the_counts() -> None:
    state = ProgressState()
    state.apply(TransferProgress(A, 5, at=0.0))
    state.apply(TransferFailed(B, "gone", at=0.0))
    snap = state.snapshot(now=0.0)
    assert (snap.blobs_active, snap.blobs_failed, snap.bytes_transferred) == (1, 1, 5)


def test_many_threads_totals_are_exact() -> None:
    state = ProgressState()
    threads, blobs_each, chunks = 16, 5, 400
    state.apply(ImagePlanned("reg/app:1", threads * blobs_each, threads * blobs_each * chunks * 1000))
    barrier = threading.Barrier(threads)

    def worker(n: int) -> None:
        barrier.wait()
        for b in range(blobs_each):
            digest = f"sha256:{n:04d}{b:060d}"
            state.apply(TransferStarted(digest, chunks * 1000))
            for _ in range(chunks):
                state.apply(TransferProgress(digest, 1000))
            state.apply(TransferFinished(digest, chunks * 1000, "uploaded"))
            state.snapshot()  # readers interleave with writers

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    snap = state.snapshot()
    total = threads * blobs_each * chunks * 1000
    assert (snap.bytes_done, snap.bytes_transferred, snap.bytes_total) == (total, total, total)
    assert snap.blobs_completed == snap.outcomes["uploaded"] == threads * blobs_each
    assert (snap.blobs_active, snap.blobs_failed, snap.percent) == (0, 0, 100.0)
