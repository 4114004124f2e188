"""The wheel exposes one import name; flows/, tasks/ and cache/ live inside it, not at the top of site-packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_has_a_single_top_level_import_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"docker_image_pusher", "docker_image_pusher-0.1.0.dist-info"}


def test_flows_tasks_and_cache_are_subpackages_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("flows/pull.py", "tasks/pull.py", "cache/_store.py", "cache/__init__.py", "py.typed"):
        assert f"docker_image_pusher/{module}" in names
    assert not any(n.startswith(("flows/", "tasks/", "cache/")) for n in names)


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        eps = z.read("docker_image_pusher-0.1.0.dist-info/entry_points.txt").decode()
    assert "docker-image-pusher = docker_image_pusher.cli:main" in eps


def test_editable_install_resolves_subpackages_to_the_top_level_folders():
    import docker_image_pusher.cache
    import docker_image_pusher.flows

    assert Path(docker_image_pusher.cache.__file__).resolve() == ROOT / "cache" / "__init__.py"
    assert Path(docker_image_pusher.flows.__file__).resolve() == ROOT / "flows" / "__init__.py"
