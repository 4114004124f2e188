"""The modes of what the cache creates: the process's umask by default; inside creating_with_umask (a run in
the agent), the run's umask, whatever the process's, in the threads that run inherits its context too."""

from __future__ import annotations

import contextvars
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_image_pusher.cache import Cache
from docker_image_pusher.cache._atomic import new_temp
from docker_image_pusher.cache._lock import exclusive_lock
from docker_image_pusher.cache._modes import creating_with_umask, current_umask, make_dirs, open_created, run_umask
from docker_image_pusher.manifest import sha256_digest


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def process_umask() -> Iterator[int]:
    """The process runs with umask 002 (laxer than the runs below) during the test."""
    old = os.umask(0o002)
    yield 0o002
    os.umask(old)


def test_current_umask_reads_the_umask_without_changing_it(process_umask: int) -> None:
    assert current_umask() == process_umask
    assert current_umask() == process_umask


def test_without_a_run_umask_the_process_umask_applies(tmp_path: Path, process_umask: int) -> None:
    assert run_umask() is None
    f, path = new_temp(tmp_path / "a" / "b", ".t-")
    f.close()
    assert _mode(path) == 0o664 and _mode(tmp_path / "a") == 0o775


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_and_folders_of_a_run_get_the_run_umask(tmp_path: Path, process_umask: int, umask: int) -> None:
    cache = Cache(tmp_path / "cache")
    data = b"{}"
    with creating_with_umask(umask):
        cache.put_blob_bytes(sha256_digest(data), data)
        cache.put_manifest("team/app", "v1", data)
        with exclusive_lock(cache.root / ".x.lock"):
            pass
        with cache.partial_blob(sha256_digest(b"x")) as partial, open_created(partial, "ab") as f:
            f.write(b"x")
    for path in [cache.root, *cache.root.rglob("*")]:
        want = 0o777 & ~umask if path.is_dir() else 0o666 & ~umask
        assert _mode(path) == want, path


def test_existing_files_and_folders_keep_their_modes(tmp_path: Path, process_umask: int) -> None:
    (tmp_path / "d").mkdir(mode=0o755)
    (tmp_path / "d" / "f").write_bytes(b"old")
    os.chmod(tmp_path / "d" / "f", 0o640)
    with creating_with_umask(0o077):
        make_dirs(tmp_path / "d" / "e")
        with open_created(tmp_path / "d" / "f", "ab") as f:
            f.write(b"more")
    assert _mode(tmp_path / "d") == 0o755 and _mode(tmp_path / "d" / "f") == 0o640
    assert _mode(tmp_path / "d" / "e") == 0o700
    assert (tmp_path / "d" / "f").read_bytes() == b"oldmore"


def test_two_runs_at_once_each_get_their_own_umask(tmp_path: Path, process_umask: int) -> None:
    """Threads started with a copy of a run's context (as Prefect's task runner does) keep that run's umask."""
    barrier = threading.Barrier(2)

    def run(umask: int) -> None:
        with creating_with_umask(umask):
            barrier.wait()
            context = contextvars.copy_context()
            worker = threading.Thread(target=context.run, args=(_write, tmp_path / f"run-{umask:03o}"))
            worker.start()
            worker.join()

    runs = [threading.Thread(target=run, args=(umask,)) for umask in (0o022, 0o077)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert _mode(tmp_path / "run-022") == 0o755 and _mode(tmp_path / "run-022" / "f") == 0o644
    assert _mode(tmp_path / "run-077") == 0o700 and _mode(tmp_path / "run-077" / "f") == 0o600


def _write(folder: Path) -> None:
    f, path = new_temp(folder, ".t-")
    f.close()
    path.rename(folder / "f")
