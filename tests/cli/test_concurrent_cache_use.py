"""One cache, several processes at once: two pulls of the same image, an extract of a tar of that image (its
config blob is the same), a pull of another image, and a clean of an older entry, all started together.
Afterwards index.json is valid and complete, and every blob every entry names is there with its digest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rig.skopeo import copy_layout_to_registry, run_skopeo

TOOL = [sys.executable, "-m", "docker_image_pusher"]


def _start(cwd: Path, *args: str, flow: bool = True) -> subprocess.Popen[str]:
    """The command in a process of its own (flows run in it too: --no-agent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_IMAGE_PUSHER_")}
    env["DOCKER_IMAGE_PUSHER_STATE_DIR"] = os.environ["DOCKER_IMAGE_PUSHER_STATE_DIR"]
    env["HOME"] = str(cwd)
    return subprocess.Popen(
        [*TOOL, *args, *(["--no-agent", "--disable-progress"] if flow else [])], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def test_four_operations_and_a_clean_on_one_cache_lose_nothing(
    cli_with_server, prefect_api, plain_registry, sample_image, unique_repo, tmp_path
):
    shared = sample_image([600_000, 300_000, 100_000])
    other = sample_image([400_000, 200_000])
    old = sample_image([250_000])
    for image, tag in ((shared, "shared"), (other, "other"), (old, "old")):
        copy_layout_to_registry(image, plain_registry, f"{unique_repo}:{tag}")
    archive = tmp_path / "shared.tar"
    run_skopeo(["copy", shared.source, f"docker-archive:{archive}:example/shared:v1"])
    cache = tmp_path / "cache"
    first = cli_with_server("pull", plain_registry.ref(f"{unique_repo}:old"), "--cache-dir", str(cache))
    assert first.returncode == 0, first.stderr

    def pull(tag: str) -> subprocess.Popen[str]:
        return _start(tmp_path, "pull", plain_registry.ref(f"{unique_repo}:{tag}"), "--cache-dir", str(cache))

    procs = [
        pull("shared"),
        pull("shared"),
        _start(tmp_path, "extract", "-f", str(archive), "--cache-dir", str(cache)),
        pull("other"),
    ]
    time.sleep(3)  # the others have imported Prefect and are writing: the clean runs beside them
    procs.append(_start(tmp_path, "clean", f"{unique_repo}:old", "--cache-dir", str(cache), flow=False))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (proc.args, out, err)

    index = json.loads((cache / "index.json").read_text())  # valid JSON
    keys = set(index)
    assert {f"{unique_repo}/shared", f"{unique_repo}/other", "example/shared/v1"} <= keys
    assert f"{unique_repo}/old" not in keys
    listed = json.loads(cli_with_server("list", "--json", "--cache-dir", str(cache)).stdout)
    assert {item["key"] for item in listed} == keys
    for item in listed:  # every blob of every entry is there, whole, under its digest
        for blob in item["blobs"].values():
            path = cache / blob["path"]
            assert path.is_file(), (item["key"], blob)
            assert path.stat().st_size == blob["size"]
            assert _sha256(path) == blob["digest"]
        assert _sha256(cache / item["manifest_path"]) == item["manifest_digest"]
    assert shared.config_digest in json.dumps(listed)  # the blob both the pulls and the extract wrote
