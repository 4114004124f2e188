"""The end-to-end demo on loopback: a throwaway distribution registry, a sample multi-arch image built in
Python and put there by skopeo, pulled into a cache by docker-image-pusher and listed; then a second
registry, mirrored from the first twice (the second run finds nothing to copy), checked with skopeo.

Run through `make demo`. Everything lives under .demo/ and the registry is stopped at the end; the local
Prefect server the tool starts on first use keeps running for the next run (`docker-image-pusher server stop`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rig.images import build_multi_arch  # noqa: E402
from rig.registry import start_plain_registry  # noqa: E402
from rig.skopeo import copy_layout_to_registry, inspect_digest  # noqa: E402

TOOL = str(Path(sys.executable).with_name("docker-image-pusher"))


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    step("starting a throwaway registry (Debian's docker-registry, CNCF distribution)")
    with start_plain_registry(work / "registry") as registry:
        print(f"registry at {registry.url}")
        step("building a sample two-platform image in Python and pushing it with skopeo")
        image = build_multi_arch(work / "layout", layers=[4 << 20, 1 << 20, 64 << 10], tag="v1", seed="demo")
        copy_layout_to_registry(image, registry, "demo/hello:v1")
        print(f"demo/hello:v1 is index {image.index_digest}")
        cache = str(work / "cache")
        step(f"docker-image-pusher pull {registry.host}/demo/hello:v1 (first run starts a local Prefect server)")
        subprocess.run([TOOL, "pull", f"{registry.host}/demo/hello:v1", "--registry", registry.url,
                        "--cache-dir", cache], check=True)  # fmt: skip
        step("docker-image-pusher list")
        subprocess.run([TOOL, "list", "--cache-dir", cache], check=True)
        entry_digest = subprocess.run(
            [TOOL, "list", "--json", "--cache-dir", cache], check=True, capture_output=True, text=True
        ).stdout
        if image.index_digest not in entry_digest:
            print("the cached digest differs from the one skopeo pushed", file=sys.stderr)
            return 1
        print(f"\ncached digest matches what skopeo pushed: {image.index_digest}")
        with start_plain_registry(work / "mirror") as mirror:
            spec = work / "mirror.yaml"
            spec.write_text(
                f"source: {{registry: {registry.url}}}\n"
                f"destination: {{registry: {mirror.url}, repository_prefix: mirror}}\n"
                "images:\n  - repository: demo/hello\n    include: ['v\\d+']\n"
            )
            for run in ("copies what differs", "again: nothing to copy"):
                step(f"docker-image-pusher mirror {spec.name} ({run})")
                subprocess.run([TOOL, "mirror", str(spec), "--cache-dir", cache], check=True)
            copied = inspect_digest(mirror, "mirror/demo/hello:v1")
            if copied != image.index_digest:
                print(f"the mirror holds {copied}, not {image.index_digest}", file=sys.stderr)
                return 1
            print(f"\nskopeo reads the same index at the mirror: {copied}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
