"""The live progress view as a person sees it: the CLI runs in a real terminal (tmux), the test reads the screen.

A rate-limited proxy makes the pull last a few seconds; the pane is captured many times while it runs. Each
frame must show the view once (a view torn by a stray log line shows its bar twice, or a log line inside it),
and the final screen must hold the last frame, the summary and the result line.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from rig.proxy import start_proxy
from rig.skopeo import copy_layout_to_registry

MIB = 1 << 20


def _tmux(socket: Path, *args: str) -> str:
    done = subprocess.run(["tmux", "-S", str(socket), *args], capture_output=True, text=True, timeout=10)
    return done.stdout


def _run_in_tmux(tmp_path: Path, argv: list[str], *, seconds: float = 90) -> tuple[list[str], str, str]:
    """Run argv in a detached 120x30 tmux pane; returns the frames captured while it ran, the last screen and
    the exit status."""
    from cli.conftest import TOOL

    assert shutil.which("tmux"), "tmux is missing: scripts/install-system-deps.sh installs it"
    socket = tmp_path / "tmux.sock"
    status = tmp_path / "status"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]
    env["HOME"] = str(tmp_path)
    env["TERM"] = "xterm-256color"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier())
    command = f"cd {shlex.quote(str(tmp_path))} && env -i {exports} {shlex.join([*TOOL, *argv])}; echo $? > {status}"
    _tmux(socket, "new-session", "-d", "-x", "120", "-y", "30", "sh", "-c", command + "; sleep 600")
    frames: list[str] = []
    deadline = time.monotonic() + seconds
    try:
        while not status.exists() and time.monotonic() < deadline:
            frames.append(_tmux(socket, "capture-pane", "-p", "-t", "0"))
            time.sleep(0.1)
        assert status.exists(), "the CLI did not finish in time"
        final = _tmux(socket, "capture-pane", "-p", "-J", "-S", "-200", "-t", "0")
    finally:
        _tmux(socket, "kill-server")
    return frames, final, status.read_text().strip()


_LOG_LINE = re.compile(r"\b(INFO|WARNING|ERROR|DEBUG)\b|Traceback|Finished in state|\| prefect")


@pytest.mark.parametrize("detail", ["simple", "detailed"])
def test_the_live_view_renders_in_a_terminal_and_no_log_line_tears_it(
    cli_with_server, plain_registry, sample_image, unique_repo, tmp_path, detail
):
    image = sample_image([3 * MIB] * 6, compresslevel=0, random_source="urandom")
    copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    with start_proxy(plain_registry, rate_limit=1 * MIB, total_rate_limit=4 * MIB) as proxy:
        argv = ["pull", proxy.ref(f"{unique_repo}:v1"), "--registry", proxy.url, "--cache-dir", str(tmp_path / "c"),
                "--progress-detail", detail, "--progress-interval", "100", "--max-concurrent", "3"]  # fmt: skip
        frames, final, status = _run_in_tmux(tmp_path, argv)
    assert status == "0", final
    live = [f for f in frames if "blobs" in f or "Blobs" in f]
    assert len(live) >= 5, f"the view was seen in only {len(live)} of {len(frames)} frames:\n{final}"
    for frame in live:
        assert not _LOG_LINE.search(frame), f"a log line in the view:\n{frame}"
        assert "\x1b" not in frame  # capture-pane without -e: escape codes would be a rendering bug
    concurrency = [f for f in live if re.search(r"concurrency\s*\d+", f, re.IGNORECASE)]
    assert concurrency, "the view never showed the current concurrency"
    mid = [f for f in live if re.search(r"\b([1-9]\d?)(\.\d)?\s?%", f)]
    assert mid, "the view never showed a percentage under 100"
    if detail == "detailed":
        short = [d.removeprefix("sha256:")[:12] for d in image.layer_digests]
        assert any(any(s in f for s in short) for f in live), "no active transfer row showed a blob digest"
    # one view per frame: the overall line appears once, never stacked up by a tear
    for frame in live:
        overall = [line for line in frame.splitlines() if re.search(r"\b\d/7\b", line)]
        assert len(overall) <= (2 if detail == "detailed" else 1), frame
    assert re.search(r"cached \S+ sha256:[0-9a-f]{64}: 7 blobs \(7 downloaded", final.replace("\n", "")), final
    assert not _LOG_LINE.search(final), final
