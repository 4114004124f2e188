import random

import pytest

from docker_image_pusher.mirror import version_key


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.9", "1.10"),  # numbers compare as numbers, not as text
        ("1.10", "2.0"),
        ("3.19", "3.20"),
        ("3.9.9", "3.10"),
        ("1.2.3", "v1.2.4"),  # a leading v is ignored
        ("v1.2.3", "1.3"),
        ("1.0.0-rc1", "1.0.0"),  # a pre-release comes before its release
        ("1.0.0-rc1", "1.0.0-rc2"),
        ("1.0.0-rc9", "1.0.0-rc10"),
        ("1.0.0-alpha", "1.0.0-beta.2"),
        ("1.0.0-beta.2", "1.0.0-rc1"),
        ("1.0.0-dev", "1.0.0-alpha"),
        ("1.0rc1", "1.0"),  # PEP 440 spelling
        ("1.0.0-RC1", "1.0.0"),  # words ignore case
        ("0.9.9", "1.0.0-rc1"),
        ("1.0.0", "1.0.0-alpine"),  # a variant word comes after the bare release
        ("1.0.0", "1.0.0-1"),  # so does a build number
        ("1.0.0-alpine", "1.0.1"),
        ("latest", "0.1"),  # words come before every version
        ("stable", "1"),
        ("edge", "latest"),  # and among themselves alphabetically
        ("Latest", "stable"),
        ("1.0", "v1.0"),  # equal by the rules: the exact text decides
        ("1-0", "1.0"),
        ("1.0", "1.0.0"),
    ],
)
def test_version_order_pairs(older, newer):
    assert version_key(older) < version_key(newer)
    assert sorted([newer, older], key=version_key) == [older, newer]


def test_a_mixed_list_sorts_oldest_first_whatever_the_input_order():
    expected = [
        "edge",
        "latest",
        "1.9",
        "1.10",
        "1.10.1-rc1",
        "1.10.1",
        "1.10.1-alpine",
        "v2.0.0-alpha",
        "v2.0.0-beta.2",
        "v2.0.0",
        "3.19",
        "3.20",
    ]
    shuffled = expected[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=version_key) == expected


def test_keys_of_any_two_tags_compare_without_type_errors():
    tags = ["latest", "1", "a1", "1a", "1.0-rc", "rc", "1..2", "_x9", "9_", "v", "v1", "V1-pre", "2024-06-06"]
    keys = [version_key(t) for t in tags]
    assert sorted(keys) == sorted(keys, reverse=True)[::-1]
    assert len(set(keys)) == len(tags)  # a total order: no two different tags tie
