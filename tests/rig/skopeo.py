"""The skopeo CLI, as an independent reference client for the rig's registries.

Machine config never matters: a temp policy.json (insecureAcceptAnything), an empty registries.conf
(CONTAINERS_REGISTRIES_CONF), an empty registries.d and an empty auth file are used for every call.
Credentials go on the command line (--src-creds/--dest-creds/--creds) but are never put in messages:
the flag values are replaced by *** and the user:password pair and password (4+ chars) are scrubbed from stderr.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from rig.images import BuiltImage, BuiltIndex
from rig.registry import RunningRegistry

__all__ = [
    "Creds",
    "SkopeoError",
    "copy",
    "copy_layout_to_registry",
    "copy_registry_to_oci",
    "delete",
    "inspect_digest",
    "inspect_raw",
    "list_tags",
    "run_skopeo",
]

# "default": the registry's own username/password (anonymous if it has none); "anonymous": none;
# or an explicit (username, password).
Creds = Literal["default", "anonymous"] | tuple[str, str]
_SECRET_FLAGS = frozenset({"--creds", "--src-creds", "--dest-creds", "--registry-token", "--src-registry-token"})
_SECRET_FLAGS |= {"--dest-registry-token", "--password", "--src-password", "--dest-password"}


class SkopeoError(RuntimeError):
    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"skopeo failed ({returncode}): {' '.join(command)}\n{stderr.strip()}")


@functools.cache
def _config_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="rig-skopeo-"))
    (directory / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (directory / "registries.conf").write_text("")
    (directory / "registries.d").mkdir()
    (directory / "auth.json").write_text("{}")
    (directory / "tmp").mkdir()
    atexit.register(shutil.rmtree, directory, True)
    return directory


def _env() -> dict[str, str]:
    directory = _config_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_AUTH_FILE", "CONTAINERS_"))}
    env["CONTAINERS_REGISTRIES_CONF"] = str(directory / "registries.conf")
    env["REGISTRY_AUTH_FILE"] = str(directory / "auth.json")
    return env


def _redacted(args: Sequence[str], secrets: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in args:
        flag, eq, _value = arg.partition("=")
        if hide_next:
            out.append("***")
        elif eq and flag in _SECRET_FLAGS:
            out.append(f"{flag}=***")
        else:
            out.append(arg)
        hide_next = not eq and arg in _SECRET_FLAGS
    return [_scrub(a, secrets) for a in out]


def _scrub(text: str, secrets: Sequence[str]) -> str:
    # Passwords shorter than 4 characters are left alone: hiding every "r" or "pw" would garble stderr.
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def run_skopeo(args: Sequence[str], *, timeout: float = 600.0, secrets: Sequence[str] = ()) -> bytes:
    """Run `skopeo --policy P --registries.d D --tmpdir T ARGS...`; stdout bytes, or SkopeoError with stderr."""
    directory = _config_dir()
    command = [
        "skopeo",
        "--policy",
        str(directory / "policy.json"),
        "--registries.d",
        str(directory / "registries.d"),
        "--tmpdir",
        str(directory / "tmp"),
        *args,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, env=_env(), stdin=subprocess.DEVNULL, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SkopeoError(_redacted(command, secrets), -1, f"timed out after {timeout}s") from None
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        raise SkopeoError(_redacted(command, secrets), done.returncode, _scrub(stderr, secrets))
    return done.stdout


def _registry_flags(prefix: str, registry: RunningRegistry, creds: Creds) -> tuple[list[str], list[str]]:
    """(flags, secrets) for one side: prefix is "src-", "dest-" or "" (inspect, delete, list-tags)."""
    flags: list[str] = []
    if registry.tls:
        assert registry.cert_dir is not None
        flags += [f"--{prefix}tls-verify=true", f"--{prefix}cert-dir", str(registry.cert_dir)]
    else:
        flags.append(f"--{prefix}tls-verify=false")
    pair = registry.creds if creds == "default" else None if creds == "anonymous" else creds
    if pair is None:
        flags.append(f"--{prefix}no-creds")
        return flags, []
    flags += [f"--{prefix}creds", f"{pair[0]}:{pair[1]}"]
    return flags, [f"{pair[0]}:{pair[1]}", pair[1]]


def copy(
    src: str,
    dest: str,
    *,
    src_registry: RunningRegistry | None = None,
    dest_registry: RunningRegistry | None = None,
    src_creds: Creds = "default",
    dest_creds: Creds = "default",
    multi_arch: bool = True,
    preserve_digests: bool = True,
    extra_args: Sequence[str] = (),
) -> None:
    """`skopeo copy [--all] [--preserve-digests] SRC DEST` with TLS/creds flags for each registry side.

    preserve_digests also stops skopeo from compressing uncompressed layers on the way.
    """
    args = ["copy"]
    secrets: list[str] = []
    if multi_arch:
        args.append("--all")
    if preserve_digests:
        args.append("--preserve-digests")
    if src_registry is not None:
        flags, hidden = _registry_flags("src-", src_registry, src_creds)
        args += flags
        secrets += hidden
    if dest_registry is not None:
        flags, hidden = _registry_flags("dest-", dest_registry, dest_creds)
        args += flags
        secrets += hidden
    if dest.startswith("oci:"):
        args.append("--dest-oci-accept-uncompressed-layers")
    run_skopeo([*args, *extra_args, src, dest], secrets=secrets)


def copy_layout_to_registry(
    layout: Path | BuiltImage | BuiltIndex,
    registry: RunningRegistry,
    dest: str,
    *,
    layout_tag: str | None = None,
    multi_arch: bool = True,
    creds: Creds = "default",
    preserve_digests: bool = True,
    extra_args: Sequence[str] = (),
) -> None:
    """Push an image to registry/`dest` ("repo:tag" or "repo@sha256:...", without the host).

    A BuiltImage/BuiltIndex is copied from its `source` (oci:, or dir: for Docker media types); a Path is
    read as an OCI layout at tag `layout_tag` (default "latest").
    """
    if isinstance(layout, BuiltImage | BuiltIndex) and layout_tag is None and layout.source:
        source = layout.source
    elif isinstance(layout, BuiltImage | BuiltIndex):
        source = f"oci:{layout.layout}:{layout_tag or layout.tag or 'latest'}"
    else:
        source = f"oci:{layout}:{layout_tag or 'latest'}"
    copy(
        source,
        f"docker://{registry.ref(dest)}",
        dest_registry=registry,
        dest_creds=creds,
        multi_arch=multi_arch,
        preserve_digests=preserve_digests,
        extra_args=extra_args,
    )


def copy_registry_to_oci(
    registry: RunningRegistry,
    src: str,
    layout_dir: Path,
    layout_tag: str = "latest",
    *,
    multi_arch: bool = True,
    creds: Creds = "default",
    preserve_digests: bool = True,
    extra_args: Sequence[str] = (),
) -> None:
    """Pull registry/`src` ("repo:tag" or "repo@digest") into the OCI layout `layout_dir` as `layout_tag`."""
    copy(
        f"docker://{registry.ref(src)}",
        f"oci:{layout_dir}:{layout_tag}",
        src_registry=registry,
        src_creds=creds,
        multi_arch=multi_arch,
        preserve_digests=preserve_digests,
        extra_args=extra_args,
    )


def inspect_raw(registry: RunningRegistry, ref: str, *, creds: Creds = "default") -> bytes:
    """The manifest (or index) bytes exactly as the registry serves them for "repo:tag" / "repo@digest"."""
    flags, secrets = _registry_flags("", registry, creds)
    return run_skopeo(["inspect", "--raw", *flags, f"docker://{registry.ref(ref)}"], secrets=secrets)


def inspect_digest(registry: RunningRegistry, ref: str, *, creds: Creds = "default") -> str:
    """sha256 digest of the manifest bytes served for `ref` (the digest a registry stores it under)."""
    return f"sha256:{hashlib.sha256(inspect_raw(registry, ref, creds=creds)).hexdigest()}"


def list_tags(registry: RunningRegistry, repo: str, *, creds: Creds = "default") -> list[str]:
    flags, secrets = _registry_flags("", registry, creds)
    out = run_skopeo(["list-tags", *flags, f"docker://{registry.ref(repo)}"], secrets=secrets)
    tags: list[str] = json.loads(out)["Tags"]
    return tags


def delete(registry: RunningRegistry, ref: str, *, creds: Creds = "default") -> None:
    """Delete the manifest `ref` points to (the registry must have storage.delete.enabled, which the rig sets)."""
    flags, secrets = _registry_flags("", registry, creds)
    run_skopeo(["delete", *flags, f"docker://{registry.ref(ref)}"], secrets=secrets)
