import io
from typing import Any

from docker_image_pusher.progress.events import (
    ImagePlanned,
    ProgressBus,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from docker_image_pusher.progress.simple import SimpleProgress, human_bytes


def test_plain_lines_count_blobs_and_bytes_without_control_codes():
    out = io.StringIO()
    view = SimpleProgress(out, interval=0)
    view(ImagePlanned("img", blobs=2, total_bytes=3 << 20))
    view(TransferStarted("sha256:a", 2 << 20, resumed_from=1 << 20, at=10.0))
    view(TransferProgress("sha256:a", 1 << 20, at=11.0))
    view(TransferFinished("sha256:a", 1 << 20, "downloaded", at=11.0))
    view(TransferFinished("sha256:b", 0, "cached", at=11.0))
    view.close()
    last = out.getvalue().splitlines()[-1]
    assert "blobs 2/2" in last and "2.0 MiB of 3.0 MiB" in last and "100.0%" in last
    assert "\x1b" not in out.getvalue()


def test_a_listener_that_raises_is_dropped_and_the_publisher_goes_on():
    bus = ProgressBus()
    seen: list[Any] = []

    def broken(event):
        raise RuntimeError("display died")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.publish(TransferProgress("sha256:a", 1))
    bus.publish(TransferProgress("sha256:a", 2))
    assert [e.delta for e in seen] == [1, 2]


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 << 30) == "5.0 GiB"
