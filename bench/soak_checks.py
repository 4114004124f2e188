"""Independent checks for bench/soak_kill.py: what a cache or a registry holds, judged without our tool's code.

Cache: every file in blobs/sha256/ must hash to its name; the image's index.json entry must name the expected
manifest digest, its manifest file must hash to it, and its config and layers must be the source's blobs.
Registry: skopeo reads the pushed manifest back (its digest must be the expected one) and copies the image to a
`dir:` folder, whose every blob must hash to its name and whose layers must be the source's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.registry import RunningRegistry
from rig.skopeo import SkopeoError, copy, inspect_raw

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What a completed operation must have produced."""

    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]


@dataclass
class CheckResult:
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    blobs_hashed: int = 0

    def fail(self, message: str) -> None:
        self.passed = False
        self.failures.append(message)


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def read_index(cache: Path) -> dict[str, Any]:
    """index.json as a dict ({} if missing); ValueError if it does not parse."""
    path = cache / "index.json"
    if not path.exists():
        return {}
    index: dict[str, Any] = json.loads(path.read_bytes())
    return index


def check_cache(cache: Path, key: str, expected: Expected) -> CheckResult:
    result = CheckResult()
    blobs = cache / "blobs" / "sha256"
    for path in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        result.blobs_hashed += 1
        if not path.is_file() or path.is_symlink():
            result.fail(f"{path.name}: not a regular file")
        elif sha256_file(path) != "sha256:" + path.name:
            result.fail(f"blob {path.name}: its bytes hash to something else")
    try:
        entry = read_index(cache).get(key)
    except ValueError as err:
        result.fail(f"index.json does not parse: {err}")
        return result
    if not isinstance(entry, dict):
        result.fail(f"index.json has no entry {key}")
        return result
    if entry.get("manifest_digest") != expected.manifest_digest:
        result.fail(f"{key}: manifest {entry.get('manifest_digest')}, expected {expected.manifest_digest}")
    manifest = cache / str(entry.get("manifest_path"))
    if not manifest.is_file() or sha256_file(manifest) != expected.manifest_digest:
        result.fail(f"{key}: manifest file {manifest} is missing or does not hash to {expected.manifest_digest}")
    records = list((entry.get("blobs") or {}).values())
    configs = [r["digest"] for r in records if r.get("is_config")]
    layers = sorted(r["digest"] for r in records if not r.get("is_config"))
    if configs != [expected.config_digest]:
        result.fail(f"{key}: config {configs}, expected {expected.config_digest}")
    if layers != sorted(expected.layer_digests):
        result.fail(f"{key}: layers {layers} are not the source's")
    for digest in [*configs, *layers]:
        if not (blobs / digest.removeprefix("sha256:")).is_file():
            result.fail(f"{key}: blob {digest} is not in blobs/sha256/")
    return result


def check_pushed(registry: RunningRegistry, ref: str, expected: Expected, scratch: Path) -> CheckResult:
    """skopeo inspect --raw (digest) and skopeo copy to dir: (every blob hashed) of registry/`ref`."""
    result = CheckResult()
    try:
        raw = inspect_raw(registry, ref)
    except SkopeoError as err:
        result.fail(f"skopeo inspect {ref}: {err}")
        return result
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if digest != expected.manifest_digest:
        result.fail(f"{ref}: the registry serves manifest {digest}, expected {expected.manifest_digest}")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        copy(f"docker://{registry.ref(ref)}", f"dir:{scratch}", src_registry=registry, multi_arch=False)
    except SkopeoError as err:
        result.fail(f"skopeo copy {ref} to dir: {err}")
        return result
    try:
        manifest = json.loads((scratch / "manifest.json").read_bytes())
        layers = sorted(layer["digest"] for layer in manifest["layers"])
        config = manifest["config"]["digest"]
        if config != expected.config_digest or layers != sorted(expected.layer_digests):
            result.fail(f"{ref}: config/layers differ from the source's")
        for blob in [config, *layers]:
            result.blobs_hashed += 1
            if sha256_file(scratch / blob.removeprefix("sha256:")) != blob:
                result.fail(f"{ref}: blob {blob} read back from the registry does not hash to its digest")
    except (OSError, ValueError, KeyError, TypeError) as err:
        result.fail(f"{ref}: could not read skopeo's copy: {err}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
