"""Malformed references, generated from a table: each is a usage error (exit 2) naming what is wrong, refused
before any flow, registry or cache is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.conftest import Cli

from .conftest import refused, run_and_check_cache

HEX = "a" * 64

# id -> (the malformed text, what the one error line must say)
IMAGES: dict[str, tuple[str, str]] = {
    "uppercase-repository": ("UPPER/app:v1", "repository must be lowercase"),
    "empty": ("", "missing IMAGE"),
    "dot-dot-component": ("team/../etc:v1", "repository must be lowercase"),
    "leading-slash": ("/app:v1", "repository must be lowercase"),
    "double-slash": ("a//b:v1", "repository must be lowercase"),
    "leading-separator": ("-app:v1", "repository must be lowercase"),
    "name-over-255": ("a" * 300, "invalid reference"),
    "tag-over-128": ("app:" + "t" * 129, "invalid tag"),
    "tag-bad-character": ("app:v1!", "invalid tag 'v1!'"),
    "digest-short": ("app@sha256:abc", "invalid digest 'sha256:abc'"),
    "digest-unknown-algorithm": ("app@md5:" + "a" * 32, "invalid digest 'md5:"),
    "digest-uppercase-hex": ("app@sha256:" + "A" * 64, "64 lowercase hex digits"),
    "two-at-signs": (f"app@sha256:{HEX}@sha256:{HEX}", "invalid digest"),
    "port-out-of-range": ("127.0.0.1:99999/app:v1", "bad registry port 99999"),
    "port-not-a-number": ("127.0.0.1:abc/app:v1", "bad registry host '127.0.0.1:abc'"),
    "leading-space": (" app:v1", "surrounded by spaces"),
    "newline": ("app\n:v1", "repository must be lowercase"),
    "escape-control-character": ("app\x1b[31m:v1", "repository must be lowercase"),
    "cyrillic-homoglyph": ("\u0430pp:v1", "repository must be lowercase"),
    "zero-width-space-in-tag": ("app:v\u200b1", "invalid tag"),
}


@pytest.mark.parametrize("case", list(IMAGES))
def test_a_malformed_image_reference_is_a_usage_error(case: str, cli: Cli, seeded_cache: Path) -> None:
    text, fragment = IMAGES[case]
    r = run_and_check_cache(cli, seeded_cache, "pull", "--cache-dir", str(seeded_cache), "--", text)
    line = refused(r, 2, fragment)
    assert "\x1b" not in line  # a control character is shown escaped, never sent to the terminal


# The other ways to name an image: -r/-t of pull, the push target, the push source.
PARTS: dict[str, tuple[list[str], str]] = {
    "pull-repository-escapes": (["pull", "-r", "a/../../etc", "-t", "v1"], "invalid repository name"),
    "pull-reference-bad-digest": (["pull", "-r", "app", "-t", "sha256:xyz"], "invalid digest"),
    "push-target-uppercase": (["push", "-s", "seed/app:v1", "127.0.0.1:9/Team/App:v1"], "invalid"),
    "push-source-bad-digest": (["push", "-s", "seed/app@sha256:12", "127.0.0.1:9/team/app:v1"], "invalid"),
}


@pytest.mark.parametrize("case", list(PARTS))
def test_a_malformed_name_given_in_parts_is_a_usage_error(case: str, cli: Cli, seeded_cache: Path) -> None:
    args, fragment = PARTS[case]
    r = run_and_check_cache(
        cli, seeded_cache, *args, "--registry", "http://127.0.0.1:9", "--cache-dir", str(seeded_cache)
    )
    refused(r, 2, fragment)
