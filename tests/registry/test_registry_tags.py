# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
"""Tag listing: against the rig's real registry (distribution 2.8), and behind httpx.MockTransport for what
that registry never does. Distribution 2.8 ignores ``n`` and ``last`` and sends every tag on one page, so the
paging itself is checked against a fake that pages like distribution 3 and Docker Hub do."""

import httpx
import pytest
from rig.skopeo import copy_layout_to_registry
from rig.skopeo import list_tags as skopeo_list_tags

from docker_image_pusher.errors import RegistryError, RegistryNotFoundError, UsageError
from docker_image_pusher.registry import Credentials, RegistryClient
from docker_image_pusher.registry import _client as client_module
from docker_image_pusher.registry._link import Link, next_link, parse_link_header

TAGS = ["v1", "v2", "v3", "latest", "stable"]
REPO = "team/app"


# -- the real registry ------------------------------------------------------------------------------------------


def push_tags(registry, image, repository, tags):
    for tag in tags:
        copy_layout_to_registry(image, registry, f"{repository}:{tag}")


def test_every_tag_of_a_real_registry_comes_back_once(plain_registry, sample_image, unique_repo):
    push_tags(plain_registry, sample_image(), unique_repo, TAGS)
    with RegistryClient(plain_registry.url) as client:
        tags = client.list_tags(unique_repo, page_size=2)
    assert sorted(tags) == sorted(TAGS) == sorted(skopeo_list_tags(plain_registry, unique_repo))
    assert len(tags) == len(set(tags))


def test_tags_are_listed_through_token_auth_with_the_pull_scope(
    token_registry, token_server, sample_image, unique_repo
):
    push_tags(token_registry, sample_image(), unique_repo, TAGS[:3])
    before = token_server.request_count
    assert token_registry.creds is not None
    with RegistryClient(token_registry.url, credentials=Credentials(*token_registry.creds)) as client:
        assert sorted(client.list_tags(unique_repo, page_size=2)) == sorted(TAGS[:3])
    asked = [scope for r in token_server.requests[before:] for scope in r.scopes]
    assert [(s.type, s.name, s.actions) for s in asked] == [("repository", unique_repo, ("pull",))]


def test_an_unknown_repository_of_a_real_registry_is_not_found(plain_registry, unique_repo):
    with RegistryClient(plain_registry.url) as client, pytest.raises(RegistryNotFoundError) as caught:
        client.list_tags(unique_repo)
    assert "no such repository" in caught.value.message and caught.value.status == 404


# -- a registry that pages ------------------------------------------------------------------------------------


class PagingRegistry:
    """Tag paging as distribution 3 does it: sorted names, ``?n=`` per page, ``?last=`` exclusive, and a
    relative ``Link: </v2/<name>/tags/list?last=..&n=..>; rel="next"`` while more remain. ``link`` rewrites the
    link (absolute URLs, other hosts)."""

    def __init__(self, tags, *, link=None, body=None):
        self.tags = sorted(tags)
        self.link = link or (lambda path: path)
        self.body = body
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if request.url.host != "r.example" or not request.url.path.endswith("/tags/list"):
            return httpx.Response(404)
        name = request.url.path.removeprefix("/v2/").removesuffix("/tags/list")
        if self.body is not None:
            return httpx.Response(200, json=self.body)
        n = int(request.url.params.get("n", "0"))
        last = request.url.params.get("last")
        rest = [t for t in self.tags if last is None or t > last]
        page = rest[:n] if n else rest
        headers = {}
        if n and len(rest) > n:
            query = httpx.QueryParams({"last": page[-1], "n": n})
            headers["Link"] = f'<{self.link(f"/v2/{name}/tags/list?{query}")}>; rel="next"'
        return httpx.Response(200, headers=headers, json={"name": name, "tags": page})

    def tag_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/tags/list")]

    def client(self) -> RegistryClient:
        return RegistryClient("https://r.example", transport=httpx.MockTransport(self))


def test_relative_next_links_are_followed_page_by_page():
    registry = PagingRegistry([f"t{i:02d}" for i in range(7)])
    with registry.client() as client:
        assert client.list_tags(REPO, page_size=3) == [f"t{i:02d}" for i in range(7)]
    asked = [(r.url.path, dict(r.url.params)) for r in registry.tag_requests()]
    assert asked == [
        (f"/v2/{REPO}/tags/list", {"n": "3"}),
        (f"/v2/{REPO}/tags/list", {"last": "t02", "n": "3"}),
        (f"/v2/{REPO}/tags/list", {"last": "t05", "n": "3"}),
    ]


def test_absolute_next_links_to_the_registry_itself_are_followed():
    registry = PagingRegistry(TAGS, link=lambda path: f"https://R.example:443{path}")
    with registry.client() as client:
        assert client.list_tags(REPO, page_size=2) == sorted(TAGS)
    assert len(registry.tag_requests()) == 3


def test_the_default_page_size_is_1000():
    registry = PagingRegistry(TAGS)
    with registry.client() as client:
        assert client.list_tags(REPO) == sorted(TAGS)
    assert [r.url.params["n"] for r in registry.tag_requests()] == ["1000"]


@pytest.mark.parametrize(
    ("link", "named"),
    [
        ("https://evil.example{}", "https://evil.example,"),
        ("//evil.example{}", "https://evil.example,"),
        ("http://r.example{}", "http://r.example,"),  # a downgrade to plain HTTP
        ("https://r.example:8443{}", "https://r.example:8443,"),
    ],
)
def test_a_next_link_off_the_registry_is_refused_without_a_request(link, named):
    registry = PagingRegistry(TAGS, link=link.format)
    with registry.client() as client, pytest.raises(RegistryError) as caught:
        client.list_tags(REPO, page_size=2)
    assert not caught.value.temporary
    assert f"refusing to follow the registry's next-page link to {named}" in caught.value.message
    assert [r.url.host for r in registry.requests] == ["r.example", "r.example"]  # the ping and page one


def test_tags_null_is_an_empty_list():
    registry = PagingRegistry([], body={"name": REPO, "tags": None})
    with registry.client() as client:
        assert client.list_tags(REPO) == []


def test_a_tag_repeated_on_the_next_page_comes_back_once():
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        if request.url.params.get("last") is None:  # this registry's "last" is inclusive
            link = f'</v2/{REPO}/tags/list?n=2&last=b>; rel="next"'
            return httpx.Response(200, headers={"Link": link}, json={"tags": ["a", "b"]})
        return httpx.Response(200, json={"tags": ["b", "c"]})

    with RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(REPO, page_size=2) == ["a", "b", "c"]


def test_a_next_link_going_round_in_a_loop_is_an_error():
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        last = "b" if request.url.params.get("last") == "a" else "a"
        link = f'</v2/{REPO}/tags/list?n=1&last={last}>; rel="next"'
        return httpx.Response(200, headers={"Link": link}, json={"tags": [last]})

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(RegistryError, match="loop"),
    ):
        client.list_tags(REPO, page_size=1)


def test_listing_stops_after_the_page_limit(monkeypatch):
    monkeypatch.setattr(client_module, "MAX_TAG_PAGES", 5)
    registry = PagingRegistry([f"t{i:03d}" for i in range(100)])
    with registry.client() as client, pytest.raises(RegistryError, match="more than 5 pages"):
        client.list_tags(REPO, page_size=1)
    assert len(registry.tag_requests()) == 5


@pytest.mark.parametrize("body", [["a"], {"tags": "a"}, {"tags": ["a", 1]}, "not json"])
def test_an_answer_that_is_not_a_tag_list_is_an_error(body):
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, content=body.encode()) if isinstance(body, str) else httpx.Response(200, json=body)

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(RegistryError, match="tag list"),
    ):
        client.list_tags(REPO)


def test_a_rate_limited_tag_list_is_a_temporary_error():
    def handler(request):
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(429, headers={"Retry-After": "30"})

    with (
        RegistryClient("https://r.example", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.list_tags(REPO)
    assert caught.value.temporary and caught.value.retry_after == 30


@pytest.mark.parametrize(("repository", "page_size"), [("Bad/Name", 10), (REPO, 0), (REPO, -1)])
def test_bad_arguments_never_reach_the_network(repository, page_size):
    registry = PagingRegistry(TAGS)
    with registry.client() as client, pytest.raises(UsageError):
        client.list_tags(repository, page_size=page_size)
    assert registry.requests == []


# -- the Link header ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ('</v2/a/tags/list?last=b&n=2>; rel="next"', "/v2/a/tags/list?last=b&n=2"),
        ("</next>;rel=next", "/next"),
        ('<https://r.example/next>; REL="Next"', "https://r.example/next"),
        ('</first>; rel="first", </prev>; rel="prev", </next>; rel="next"', "/next"),
        ('</a,b>; title="x, y; rel=next"; rel="prev next"', "/a,b"),
        ('</p>; rel="prev"; rel="next", </n>; rel="next"', "/n"),  # only the first rel of a link counts
        (["</p>; rel=prev", '</n>; rel="next"'], "/n"),  # several header values
        ('garbage, </n>; rel="next"', "/n"),
        ('</broken; rel="next"', None),
        ('</n>; rel="next" junk', None),
        ('</n>; title="unterminated; rel="next"', None),
        ('<>; rel="next"', None),
        ('</p>; rel="prev"', None),
        ("", None),
        ([], None),
    ],
)
def test_next_link(values, expected):
    assert next_link(values) == expected


def test_parse_link_header_keeps_every_link_and_its_parameters():
    links = parse_link_header('</a>; rel="next"; Title="say \\"hi\\"", <b>;anchor ,</c>')
    assert links == [Link("/a", {"rel": "next", "title": 'say "hi"'}), Link("b", {"anchor": ""}), Link("/c")]
