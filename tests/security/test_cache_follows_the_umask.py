"""Cache files and folders are created with the umask of the command that made them (0o666 & ~umask for
files, 0o777 & ~umask for folders), and so is a saved tar: in this process (--no-agent) and in the warm
agent, which an earlier command started with another umask and which runs several commands at once."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from rig import skopeo
from rig.archives import write_docker_save
from rig.fixtures import SampleImages
from rig.registry import RunningRegistry

from .conftest import Runner


def _wrong_modes(root: Path, umask: int) -> list[str]:
    """Every file and folder under ``root`` (and ``root`` itself) whose permission bits are not the umask's."""
    wrong = []
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            want = 0o777 & ~umask
        elif stat.S_ISREG(st.st_mode):
            want = 0o666 & ~umask
        else:
            continue
        if stat.S_IMODE(st.st_mode) != want:
            wrong.append(f"{path.relative_to(root.parent)}: {stat.S_IMODE(st.st_mode):o}, want {want:o}")
    return wrong


@pytest.fixture
def seeded(plain_registry: RunningRegistry, sample_image: SampleImages, unique_repo: str, tmp_path: Path) -> str:
    """An image in the plain registry (its reference); the same image as a docker-save tar in tmp_path."""
    image = sample_image([3000, 40_000])
    skopeo.copy_layout_to_registry(image, plain_registry, f"{unique_repo}:v1")
    write_docker_save(tmp_path / "image.tar", [(image, [f"{unique_repo}/saved:v1"])])
    return plain_registry.ref(f"{unique_repo}:v1")


def _pull_extract_save(runner: Runner, ref: str, repo: str, umask: int, tar: Path, *flags: str) -> Path:
    cache = f"cache-{umask:03o}"
    done = runner("pull", ref, "--cache-dir", cache, *flags, umask=umask)
    assert done.returncode == 0, done.stderr
    if "--no-agent" not in flags:  # in this process every file is created the same way: one command is enough
        done = runner("extract", "-f", str(tar), "--cache-dir", cache, umask=umask)
        assert done.returncode == 0, done.stderr
        done = runner("save", f"{repo}:v1", f"{repo}/saved:v1", "-o", f"out-{umask:03o}.tar", "--cache-dir", cache,
                      umask=umask)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert _wrong_modes(runner.work / f"out-{umask:03o}.tar", umask) == []
    return runner.work / cache


def test_a_run_in_this_process_creates_cache_files_with_its_umask(
    runner: Runner, seeded: str, unique_repo: str, tmp_path: Path
) -> None:
    umask = 0o027  # not pytest's own (022), and mkstemp's 0600 would not match it
    cache = _pull_extract_save(runner, seeded, unique_repo, umask, tmp_path / "image.tar", "--no-agent")
    assert len(list(cache.rglob("*"))) > 10  # blobs, manifests, index, locks, folders
    assert _wrong_modes(cache, umask) == []


def _agent_umasks(state: Path) -> set[int]:
    umasks = set()
    for pid_file in (state / "agent").glob("*.pid"):
        status = Path(f"/proc/{pid_file.read_text().strip()}/status")
        if status.exists():
            umasks |= {int(line.split()[1], 8) for line in status.read_text().splitlines() if line.startswith("Umask:")}
    return umasks


def test_runs_in_the_agent_create_cache_files_with_the_umask_of_their_command(
    runner: Runner, seeded: str, unique_repo: str, tmp_path: Path
) -> None:
    umasks = (0o077, 0o027, 0o022)  # the agent (started by an earlier command, or the first of these) has one
    for umask in umasks:
        cache = _pull_extract_save(runner, seeded, unique_repo, umask, tmp_path / "image.tar")
        assert _wrong_modes(cache, umask) == []
    # The runs went to an agent, whose one umask is another than that of at least two of them.
    assert _agent_umasks(runner.state)
    assert not [r for r in runner.runs if "running in this process" in r.stderr]
