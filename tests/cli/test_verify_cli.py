"""docker-image-pusher verify [--repair], end to end on a cache made by extracting a docker save of two images."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli.conftest import Cli
from rig.archives import write_docker_save
from rig.images import build_image


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """One cache per module, made by the real extract: team/one:v1 and team/two:v1 (no shared blobs)."""
    base = tmp_path_factory.mktemp("verify-cli")
    one = build_image(base / "one", [3000, 5000], seed="verify-one", compress=False)
    two = build_image(base / "two", [4000], seed="verify-two", compress=False)
    archive = write_docker_save(base / "two.tar", [(one, ["team/one:v1"]), (two, ["team/two:v1"])])
    r = Cli(base)("extract", "-f", str(archive), "--cache-dir", str(base / "cache"))
    assert r.returncode == 0, r.stderr
    return base / "cache"


@pytest.fixture
def cache(extracted, tmp_path) -> Path:
    return Path(shutil.copytree(extracted, tmp_path / ".cache", symlinks=True))


def _index(cache: Path) -> dict[str, Any]:
    index: dict[str, Any] = json.loads((cache / "index.json").read_text())
    return index


def _layer(cache: Path, key: str) -> Path:
    blob = next(b for b in _index(cache)[key]["blobs"].values() if not b["is_config"])
    return cache / str(blob["path"])


def _error_lines(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.strip()]


def test_a_sound_cache_exits_0_with_a_summary(cli, cache):
    r = cli("verify")  # the default --cache-dir .cache, in the cli's working folder
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [r.stdout.strip()]
    assert r.stdout.startswith("verified 7 blobs (") and r.stdout.strip().endswith("and 2 images: 0 problems")


def test_a_flipped_byte_in_a_layer_is_reported_and_exits_8(cli, cache):
    layer = _layer(cache, "team/one/v1")
    data = bytearray(layer.read_bytes())
    data[100] ^= 0x01
    layer.write_bytes(bytes(data))
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 8
    rel = layer.relative_to(cache).as_posix()
    assert f"blob-corrupt {rel}: its {len(data)} bytes hash to sha256:" in r.stdout
    assert f"image-incomplete {rel}: team/one/v1: layer is corrupt" in r.stdout
    assert r.stdout.splitlines()[-1].endswith("2 images: 2 problems")
    (line,) = _error_lines(r)
    assert line.startswith("error: 2 problem(s)") and "--repair" in line
    assert layer.exists()


def test_repair_deletes_the_bad_blob_and_the_image_that_needed_it_and_keeps_the_others(cli, cache):
    layer = _layer(cache, "team/one/v1")
    layer.write_bytes(b"not the layer")
    r = cli("verify", "--repair", "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].endswith("2 problems, repaired") and "-> deleted" in r.stdout
    assert not layer.exists() and list(_index(cache)) == ["team/two/v1"]
    assert not (cache / "manifests" / "team" / "one").exists()
    again = cli("verify", "--cache-dir", str(cache))
    assert again.returncode == 0 and again.stdout.strip().endswith("1 images: 0 problems"), again.stdout


def test_a_truncated_blob_is_found_and_repaired(cli, cache):
    layer = _layer(cache, "team/two/v1")
    with layer.open("r+b") as f:
        f.truncate(1000)
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 8 and "its 1000 bytes hash to" in r.stdout
    assert cli("verify", "--repair", "--cache-dir", str(cache)).returncode == 0
    assert list(_index(cache)) == ["team/one/v1"]


def test_a_missing_manifest_file_makes_its_image_incomplete(cli, cache):
    (cache / _index(cache)["team/two/v1"]["manifest_path"]).unlink()
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 8
    assert "image-incomplete manifests/team/two/v1: team/two/v1: manifest file is missing" in r.stdout
    assert cli("verify", "--repair", "--cache-dir", str(cache)).returncode == 0
    assert list(_index(cache)) == ["team/one/v1"]


def test_a_leftover_tmp_file_is_reported_and_repair_deletes_it(cli, cache):
    (cache / "tmp" / ".extract-dead.tar").write_bytes(b"left by a SIGKILLed extract")
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 8 and "tmp-leftover tmp/.extract-dead.tar: temporary file" in r.stdout
    r = cli("verify", "--repair", "--cache-dir", str(cache))
    assert r.returncode == 0 and not (cache / "tmp" / ".extract-dead.tar").exists()
    assert len(_index(cache)) == 2


def test_a_partial_download_is_no_problem_and_repair_keeps_it_for_the_next_pull(cli, cache):
    partial = cache / "tmp" / "partial" / ("ab" * 32)
    partial.parent.mkdir(exist_ok=True)
    partial.write_bytes(b"x" * 3000)
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problems" in r.stdout and "kept 1 partial download(s)" in r.stdout
    assert cli("verify", "--repair", "--cache-dir", str(cache)).returncode == 0 and partial.exists()


def test_an_index_that_is_not_json_is_moved_aside_by_repair(cli, cache):
    (cache / "index.json").write_text("{ this is not json")
    r = cli("verify", "--cache-dir", str(cache))
    assert r.returncode == 8 and "index-unreadable index.json: not valid JSON" in r.stdout
    r = cli("verify", "--repair", "--cache-dir", str(cache))
    assert r.returncode == 0 and "moved aside to index.json.broken-" in r.stdout
    (aside,) = cache.glob("index.json.broken-*")
    assert aside.read_text() == "{ this is not json" and _index(cache) == {}
    assert json.loads(cli("list", "--json", "--cache-dir", str(cache)).stdout) == []


_HOLD_GC_LOCK = textwrap.dedent("""
    import sys
    from docker_image_pusher.cache import Cache, gc_lock
    with gc_lock(Cache(sys.argv[1]), exclusive=False):
        print("held", flush=True)
        sys.stdin.read()
""")


def test_repair_is_refused_while_another_process_holds_the_gc_lock_shared(cli, cache):
    layer = _layer(cache, "team/one/v1")
    layer.write_bytes(b"not the layer")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_GC_LOCK, str(cache)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        r = cli("verify", "--repair", "--cache-dir", str(cache))
        assert r.returncode == 8 and r.stdout == ""
        (line,) = _error_lines(r)
        assert "a pull, extract or push is using it" in line
        assert layer.exists() and len(_index(cache)) == 2
    finally:
        holder.communicate(input="", timeout=30)
    assert cli("verify", "--repair", "--cache-dir", str(cache)).returncode == 0


def test_json_output_parses_and_lists_each_problem(cli, cache):
    (cache / "tmp" / ".write-x.tmp").write_bytes(b"x")
    r = cli("verify", "--json", "--cache-dir", str(cache))
    assert r.returncode == 8
    report = json.loads(r.stdout)
    assert report["sound"] is False and report["repair"] is False
    assert report["blobs_checked"] == 7 and report["images_checked"] == 2 and report["bytes_hashed"] > 12000
    assert report["problems"] == [
        {"kind": "tmp-leftover", "path": "tmp/.write-x.tmp", "detail": report["problems"][0]["detail"],
         "image": None, "repaired": None}
    ]  # fmt: skip
    r = cli("verify", "--json", "--repair", "--cache-dir", str(cache))
    assert r.returncode == 0 and json.loads(r.stdout)["problems"][0]["repaired"] == "deleted"


def test_a_missing_cache_folder_is_not_found_exit_4(cli, tmp_path):
    r = cli("verify", "--cache-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 4
    assert _error_lines(r) == [f"error: no cache at {tmp_path / 'nowhere'}"]


def test_verify_never_imports_prefect(cache):
    code = textwrap.dedent("""
        import sys
        from docker_image_pusher.cli._main import run
        code = run(["verify", "--repair", "--cache-dir", sys.argv[1]])
        assert code == 0, code
        assert not any(m == "prefect" or m.startswith("prefect.") for m in sys.modules), "prefect imported"
    """)
    r = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True, text=True, cwd=cache.parent)
    assert r.returncode == 0, r.stderr
