"""Saving streams: a 200 MiB layer does not raise the peak RSS of the saving process by more than ~20 MiB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rig.fixtures import SampleImages
from save.save_rig import CacheImage

from docker_image_pusher.cache import Cache

MIB = 1 << 20

# Plan first (imports, manifests), then measure the peak RSS around the write alone: ru_maxrss is a high-water
# mark, so a layer read into memory would show up even if it were freed again.
_SAVE = """
import json, resource, sys
from pathlib import Path
from docker_image_pusher.cache import Cache
from docker_image_pusher.saving import plan_save, write_archive

plan = plan_save(Cache(sys.argv[1]), [sys.argv[2]], "docker")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = write_archive(plan, Path(sys.argv[3]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "after_kib": after, "bytes": result.archive_bytes}))
"""


def test_a_200_mib_layer_is_streamed_not_loaded(
    cache: Cache, cache_image: CacheImage, sample_image: SampleImages, tmp_path: Path
) -> None:
    image = sample_image([200 * MIB], compress=False)
    cache_image(image, "team/big")
    image.layers[0].path.unlink()  # keep the page cache and the disk for the save itself
    out = tmp_path / "big.tar"
    done = subprocess.run(
        [sys.executable, "-c", _SAVE, str(cache.root), "team/big/latest", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    grew_mib = (measured["after_kib"] - measured["before_kib"]) / 1024
    assert measured["bytes"] > 200 * MIB
    assert grew_mib < 20, f"peak RSS grew by {grew_mib:.1f} MiB while saving a 200 MiB layer"
