import pytest

from docker_image_pusher.mirror import ImageSpec, is_immutable, select_tags, spec_from_dict

LISTED = ["latest", "edge", "3.18", "3.19", "3.19.1", "3.20", "3.20.0-rc1", "3.20.1", "3.21-rc2", "3.9"]


def image(**keys):
    return ImageSpec.model_validate({"repository": "library/alpine", **keys})


def resolved(defaults=None, **keys):
    spec = spec_from_dict(
        {
            "source": {"registry": "https://registry-1.docker.io"},
            "destination": {"registry": "127.0.0.1:5000"},
            "defaults": defaults or {},
            "images": [{"repository": "library/alpine", **keys}],
        }
    )
    return next(iter(spec.images_resolved()))


def test_explicit_tags_need_no_listing_and_come_back_in_version_order():
    img = image(tags=["3.20", "latest", "3.9"])
    assert not img.needs_listing
    assert select_tags(img, None) == ["latest", "3.9", "3.20"]


def test_explicit_tags_are_kept_even_when_the_source_does_not_list_them():
    assert select_tags(image(tags=["9.9"], include=[r"3\.18"]), LISTED) == ["3.18", "9.9"]


def test_include_must_match_the_whole_tag():
    assert select_tags(image(include=[r"3\.1\d"]), LISTED) == ["3.18", "3.19"]
    assert select_tags(image(include=[r"3\.1"]), LISTED) == []  # not a prefix match


def test_a_tag_is_kept_if_any_include_pattern_matches():
    assert select_tags(image(include=["edge", r"3\.9"]), LISTED) == ["edge", "3.9"]


def test_exclude_searches_and_drops_explicit_and_listed_tags():
    img = image(tags=["3.22-rc1", "3.18"], include=[r"3\.20.*"], exclude=[r"-rc\d*$"])
    assert select_tags(img, LISTED) == ["3.18", "3.20", "3.20.1"]


def test_newest_alone_ranks_every_listed_tag_and_prefers_versions_over_words():
    img = image(newest=3)
    assert img.needs_listing
    assert select_tags(img, LISTED) == ["3.20.0-rc1", "3.20.1", "3.21-rc2"]


def test_newest_applies_after_include_and_exclude():
    img = image(include=[r"3\.\d+(\.\d+)?(-rc\d+)?"], exclude=["-rc"], newest=2)
    assert select_tags(img, LISTED) == ["3.20", "3.20.1"]


def test_newest_never_drops_an_explicit_tag():
    img = image(tags=["latest", "3.9"], include=[r"3\.\d+"], newest=2)
    assert select_tags(img, LISTED) == ["latest", "3.9", "3.19", "3.20"]


def test_newest_larger_than_the_candidates_keeps_them_all():
    assert select_tags(image(include=[r"3\.1\d"], newest=10), LISTED) == ["3.18", "3.19"]


@pytest.mark.parametrize("newest", [1, 2, 3, 4, 5, 7, 8, 9])
def test_newest_keeps_min_of_n_and_the_candidates(newest):
    listed = ["1.0", "1.1", "1.2", "1.3"]
    assert select_tags(image(include=[r"1\.\d"], newest=newest), listed) == listed[-min(newest, 4) :]


def test_tags_chosen_twice_come_back_once():
    img = image(tags=["3.20", "3.20"], include=[r"3\.20"])
    assert select_tags(img, [*LISTED, "3.20"]) == ["3.20"]


def test_listed_tags_outside_the_tag_grammar_are_ignored():
    assert select_tags(image(include=[".*"]), ["ok", "-bad", ".hidden", "x" * 129, ""]) == ["ok"]


def test_a_listing_is_required_when_include_or_newest_is_set():
    with pytest.raises(ValueError, match="tag list"):
        select_tags(image(newest=1), None)


def test_every_tag_is_asked_for_with_include_all():
    assert select_tags(image(include=[".*"]), ["b", "a", "1.0"]) == ["a", "b", "1.0"]


def test_selection_works_on_resolved_images_too():
    img = resolved(include=[r"3\.19.*"], newest=1)
    assert img.needs_listing
    assert select_tags(img, LISTED) == ["3.19.1"]


def test_immutable_patterns_come_from_defaults_unless_the_image_sets_them():
    defaults = {"immutable": [r"\d+\.\d+\.\d+"]}
    img = resolved(defaults, tags=["3.20.1"])
    assert is_immutable(img, "3.20.1")
    assert not is_immutable(img, "3.20")  # full match: 3.20 is not x.y.z
    assert not is_immutable(img, "3.20.1-rc1")
    own = resolved(defaults, tags=["3.20.1"], immutable=["latest"])
    assert is_immutable(own, "latest") and not is_immutable(own, "3.20.1")
    assert not is_immutable(resolved(defaults, tags=["3.20.1"], immutable=[]), "3.20.1")
