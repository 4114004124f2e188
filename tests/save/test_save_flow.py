"""save_flow as Prefect runs it: a real local Prefect server (ours, started in a temp state dir), in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rig.fixtures import SampleImages
from save.save_rig import CacheImage, member_bytes

from docker_image_pusher.cache import Cache
from docker_image_pusher.server import stop_server

_RUN = """
import json, sys
from docker_image_pusher.prefect_runtime import prepare_prefect

cache_dir, out = sys.argv[1], sys.argv[2]
prepare_prefect(console_logs=False)
from prefect.task_runners import ThreadPoolTaskRunner
from docker_image_pusher.errors import PusherError
from docker_image_pusher.flows.save import save_flow
from docker_image_pusher.progress.events import TransferFinished, open_channel

flow = save_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
channel, bus = open_channel()
saved = []
bus.subscribe(lambda e: saved.append(e.digest) if isinstance(e, TransferFinished) else None)
result = flow(["team/app/v1"], out, cache_dir, "oci", channel)
try:
    flow(["team/app/v9"], out + ".missing", cache_dir)
    error = None
except PusherError as err:
    error = [type(err).__name__, err.message]
print(json.dumps({"result": result.__dict__, "saved": saved, "error": error}))
"""


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Our own local Prefect server's state dir; the server is stopped once the flow process has exited
    (stopping it earlier makes Prefect's exit hooks retry sending logs for a minute)."""
    state = tmp_path / "state"
    yield state
    monkeypatch.setenv("DOCKER_IMAGE_PUSHER_STATE_DIR", str(state))
    stop_server()


def test_save_flow_writes_the_archive_and_reports_progress(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path, state_dir: Path
) -> None:
    image = sample_image([1000, 2000], tag="v1")
    cache_image(image, "team/app")
    out = tmp_path / "app.tar"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCKER_IMAGE_PUSHER_"))}
    env.update(DOCKER_IMAGE_PUSHER_STATE_DIR=str(state_dir), HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(cache.root), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert (result["out"], result["format"], result["images"]) == (str(out), "oci", ["team/app/v1"])
    assert sorted(report["saved"]) == sorted([image.manifest_digest, image.config_digest, *image.layer_digests])
    assert json.loads(member_bytes(out, "index.json"))["manifests"][0]["digest"] == image.manifest_digest
    assert report["error"][0] == "NotFoundError" and "cached: team/app/v1" in report["error"][1]
    assert not (tmp_path / "app.tar.missing").exists()
