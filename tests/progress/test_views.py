"""The views: rich Live frames, plain timestamped lines, choosing one, and the end-of-run summary."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.console import Console

from docker_image_pusher.progress.events import (
    ConcurrencyAdjusted,
    ImagePlanned,
    ProgressBus,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from docker_image_pusher.progress.lines import LinesView
from docker_image_pusher.progress.live import LiveView, render_frame
from docker_image_pusher.progress.state import ProgressState
from docker_image_pusher.progress.units import human_bytes
from docker_image_pusher.progress.views import make_view, render_summary, summary_table

MiB = 1 << 20
A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32
C = "sha256:" + "c3" * 32
STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


class TtyIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100)


def text_of(console: Console) -> str:
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)  # drop colours and cursor moves


def busy_state() -> ProgressState:
    state = ProgressState(concurrency=4)
    state.apply(ImagePlanned("reg/app:1", 4, 40 * MiB, at=0.0))
    state.apply(TransferFinished("sha256:" + "d" * 64, 0, "skipped", at=0.5))
    state.apply(TransferStarted(A, 10 * MiB, at=1.0))
    state.apply(TransferStarted(B, 10 * MiB, resumed_from=2 * MiB, at=1.0))
    state.apply(TransferStarted(C, 10 * MiB, at=1.0))
    for i in range(8):
        state.apply(TransferProgress(A, MiB // 2, at=1.0 + 0.5 * i))
    state.apply(TransferFailed(C, "503", temporary=True, at=3.0))
    state.apply(ConcurrencyAdjusted(4, 6, "throughput rose 20% [probe]", throughput=3e6, at=4.0))
    return state


def test_simple_frame_shows_overall_and_active_transfers() -> None:
    console = terminal()
    console.print(render_frame(busy_state().snapshot(now=5.0), "simple"))
    out = text_of(console)
    assert "blobs 1/4" in out and "MiB/s" in out and "ETA 0:" in out
    assert re.search(r"\d+\.\d%", out)
    assert "a1a1a1a1a1a1 40%" in out and "b2b2b2b2b2b2 20%" in out and "c3c3c3c3c3c3 retrying" in out
    assert "concurrency 6" in out
    assert len(out.strip().splitlines()) == 2


def test_detailed_frame_shows_totals_rows_concurrency_and_speeds() -> None:
    console = terminal()
    console.print(render_frame(busy_state().snapshot(now=5.0), "detailed"))
    out = text_of(console)
    assert "4 total · 1 completed · 0 failed · 2 active · 1 retrying" in out
    assert "runtime 0:05" in out
    assert re.search(r"a1a1a1a1a1a1\s+4\.0 MiB / 10\.0 MiB\s+40%", out)
    assert re.search(r"b2b2b2b2b2b2\s+2\.0 MiB / 10\.0 MiB\s+20%", out)
    assert "c3c3c3c3c3c3" in out and "retrying" in out
    assert "concurrency 6 · 1 adjustment · last 4 → 6: throughput rose 20% [probe]" in out
    assert "average 1.0 MiB/s" in out and "current 1.0 MiB/s" in out and "ETA" in out


def test_detailed_frame_caps_its_rows() -> None:
    state = ProgressState()
    for n in range(30):
        state.apply(TransferStarted(f"sha256:{n:064d}", 100, at=0.0))
    console = terminal()
    console.print(render_frame(state.snapshot(now=1.0), "detailed", max_rows=5))
    out = text_of(console)
    assert "+25 more" in out and out.count("0000000000") == 5


def test_live_view_as_a_listener_leaves_the_last_frame() -> None:
    console = terminal()
    bus = ProgressBus()
    with LiveView("detailed", interval=0.05, console=console) as view:
        assert view.console is console
        bus.subscribe(view)
        bus.publish(ImagePlanned("reg/app:1", 1, 4 * MiB))
        bus.publish(TransferStarted(A, 4 * MiB))
        bus.publish(TransferProgress(A, 4 * MiB))
        deadline = time.monotonic() + 3
        while "a1a1a1a1a1a1" not in text_of(console) and time.monotonic() < deadline:
            time.sleep(0.02)  # the refresh thread draws the active transfer
        bus.publish(TransferFinished(A, 4 * MiB, "uploaded"))
    view.close()  # a second close does nothing
    out = text_of(console)
    assert "a1a1a1a1a1a1" in out  # an intermediate frame showed the active transfer
    last = out[out.rindex("blobs:") :]
    assert "1 total · 1 completed · 0 failed · 0 active" in last and "100.0%" in last
    assert view.state.snapshot().finished


def test_live_view_closed_without_start_prints_one_frame() -> None:
    console = terminal()
    view = LiveView("simple", console=console)
    view(TransferStarted(A, 10, at=0.0))
    view.close()
    assert "a1a1a1a1a1a1 0%" in text_of(console)


def test_lines_view_prints_a_timestamped_line_per_interval_without_events() -> None:
    stream = io.StringIO()
    view = LinesView(interval=0.05, stream=stream)
    view.start()
    view(TransferStarted(A, 100))
    time.sleep(0.4)  # a stall: no events at all
    view(ConcurrencyAdjusted(4, 2, "registry pushed back (429)", throughput=1.5 * MiB))
    view.close()
    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue()
    assert all(STAMP.match(line) for line in lines)
    progress = [line for line in lines if "blobs " in line]
    assert len(progress) >= 4  # ~8 intervals went by; be lenient with a busy machine
    assert any("concurrency 4 -> 2: registry pushed back (429) (at 1.5 MiB/s)" in line for line in lines)
    assert "concurrency 2" in progress[-1] and "active 1" in progress[-1]
    count = len(lines)
    time.sleep(0.15)
    assert len(stream.getvalue().splitlines()) == count  # the timer stopped with close()


def test_lines_view_detailed_line() -> None:
    stream = io.StringIO()
    with LinesView(interval=60, stream=stream, detail="detailed") as view:
        view(TransferStarted(A, 100))
        view(TransferProgress(A, 50))
    line = stream.getvalue().strip()
    assert STAMP.match(line)
    assert "a1a1a1a1a1a1:50%" in line and "adjustments 0" in line and "runtime" in line


def test_make_view_picks_by_terminal() -> None:
    assert make_view("simple", 200, disabled=True, stream=TtyIO()) is None
    tty = TtyIO()
    live = make_view("detailed", 200, disabled=False, stream=tty)
    assert isinstance(live, LiveView) and live.detail == "detailed" and live.interval == pytest.approx(0.2)
    assert live.console is not None and live.console.file is tty
    lines = make_view("simple", 1500, disabled=False, stream=io.StringIO())
    assert isinstance(lines, LinesView) and lines.console is None and lines.interval == pytest.approx(1.5)
    with pytest.raises(ValueError):
        make_view("fancy", 200, disabled=False, stream=io.StringIO())


def test_make_view_uses_lines_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_view("simple", 200, disabled=False, stream=TtyIO()), LinesView)


def test_summary_text_and_table() -> None:
    state = ProgressState(concurrency=4)
    state.apply(ImagePlanned("reg/app:1", 3, 30 * MiB, at=0.0))
    state.apply(TransferStarted(A, 20 * MiB, at=0.0))
    state.apply(TransferFailed(A, "reset", temporary=True, at=0.5))
    state.apply(TransferStarted(A, 20 * MiB, at=1.0))
    state.apply(ConcurrencyAdjusted(4, 5, "probe", at=1.5))
    state.apply(TransferProgress(A, 20 * MiB, at=2.0))
    state.apply(TransferFinished(A, 20 * MiB, "uploaded", at=2.0))
    state.apply(TransferFinished(B, 0, "skipped", at=2.0))
    state.apply(TransferFinished(C, 0, "mounted", at=2.0))
    summary = state.summary(now=4.0)
    text = render_summary(summary)
    assert "\x1b" not in text
    assert text.splitlines() == [
        "transferred 20.0 MiB in 0:04 (5.0 MiB/s)",
        "blobs: 1 uploaded, 1 skipped, 1 mounted",
        "retries: 1, concurrency adjustments: 1 (concurrency 4 -> 5)",
    ]
    rows = {row["metric"]: row["value"] for row in summary_table(summary)}
    assert rows["bytes transferred"] == "20.0 MiB" and rows["blobs"] == "3/3"
    assert rows["blobs uploaded"] == "1" and rows["blobs skipped"] == "1" and rows["blobs mounted"] == "1"
    assert rows["retries"] == "1" and rows["concurrency adjustments"] == "1" and rows["concurrency"] == "4 -> 5"
    assert "blobs downloaded" not in rows


def test_human_bytes_still_importable_from_simple() -> None:
    assert human_bytes(1536) == "1.5 KiB"
