"""Shared pytest configuration. The integration rig's fixtures live in tests/rig/fixtures.py."""

from rig.fixtures import *  # noqa: F403
