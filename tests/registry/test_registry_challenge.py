# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import random

import pytest

from docker_image_pusher.errors import RegistryError
from docker_image_pusher.registry import Challenge, parse_challenges
from docker_image_pusher.registry._challenge import pick_challenge


def test_bearer_challenge_keeps_commas_inside_quoted_scope():
    header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x/y:pull,push"'
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:x/y:pull,push",)


def test_basic_challenge_and_case_insensitive_scheme_and_names():
    [challenge] = parse_challenges('BASIC Realm="Registry Realm"')
    assert challenge == Challenge("basic", {"realm": "Registry Realm"})


def test_several_challenges_in_one_header_are_split_at_the_right_commas():
    header = (
        'Basic realm="a, b", Bearer realm="https://t/token", service=svc, scope="repository:r:pull,push" , Negotiate'
    )
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
    assert challenges[0].realm == "a, b"
    assert challenges[1].params == {"realm": "https://t/token", "service": "svc", "scope": "repository:r:pull,push"}


def test_several_header_values_are_all_read():
    challenges = parse_challenges(['Basic realm="x"', 'Bearer realm="https://t/token"'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert pick_challenge(challenges) is challenges[1]


def test_quoted_string_escapes_are_unescaped():
    [challenge] = parse_challenges(r'Bearer realm="https://t/token",error_description="say \"hi\", \\ ok"')
    assert challenge.params["error_description"] == 'say "hi", \\ ok'


def test_token68_and_empty_list_elements():
    challenges = parse_challenges(", Negotiate abc+/def==, ,Basic realm=x,")
    assert challenges[0] == Challenge("negotiate", {}, "abc+/def==")
    assert challenges[1].realm == "x"


def test_space_scopes_are_separate():
    [challenge] = parse_challenges('Bearer realm="r",scope="repository:a:pull repository:b:pull"')
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull")


@pytest.mark.parametrize(
    "header",
    [
        'Bearer realm="unterminated',
        "=",
        '"quoted"',
        'Bearer realm="x" service="y"',
        "Bearer realm=a=b",
        "Bearer\x00realm=x",
        "Bearer realm=\u00e9",
        'Bearer realm="x",,=',
        "Basic a b",
    ],
)
def test_garbage_headers_raise_a_clear_registry_error(header):
    with pytest.raises(RegistryError) as info:
        parse_challenges(header)
    assert "WWW-Authenticate" in info.value.message
    assert "\n" not in info.value.message


def test_random_input_never_crashes():
    rng = random.Random(7)
    alphabet = 'Bearer Basic realm= "\\,;\t=abc:/' + "\u00e9\x00"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            result = parse_challenges(text)
        except RegistryError:
            continue
        assert all(isinstance(c, Challenge) for c in result)


def test_empty_header_gives_no_challenge():
    assert parse_challenges("") == []
    assert pick_challenge([]) is None


def test_a_bare_word_after_the_scheme_is_a_token68_not_a_parameter():
    # Grammatically valid, useless for us: the auth layer then reports a bearer challenge without a realm.
    assert parse_challenges("Bearer realm=") == [Challenge("bearer", {}, "realm=")]
    assert parse_challenges("Bearer realm")[0].realm is None
