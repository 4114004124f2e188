"""The registry client: one thread-safe ``httpx.Client`` per registry, shared by all worker threads."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import certifi
import httpx

from ..errors import IntegrityError, PusherError, RegistryAuthError, RegistryError, UsageError
from ..media_types import MANIFEST_ACCEPT
from ..reference import check_digest, check_repository, check_tag, is_digest
from ._auth import RegistryAuth, granted_actions, is_loopback_host
from ._credentials import Credentials
from ._download import download_blob
from ._errors import error_from_response, error_from_transport, is_plain_http_answer_to_tls
from ._link import next_link
from ._models import FetchedManifest, ManifestHead
from ._rate_limit import RateLimit, parse_rate_limit
from ._redact import install_log_redaction, trace_hooks
from ._redirects import install_redirect_policy
from ._session import Session
from ._upload import Upload, UploadSession, start_upload

__all__ = ["DEFAULT_MAX_MANIFEST_BYTES", "MAX_TAG_PAGES", "RegistryClient"]

DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TAG_PAGES = 10_000
# One page of a tag list; a registry that ignores ``n`` (distribution 2.8) sends every tag at once.
_MAX_TAG_PAGE_BYTES = 32 * 1024 * 1024
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=None)  # read: the default of --read-timeout
# ~16 workers, each holding at most one connection at a time, plus headroom for token requests and for
# redirect targets (CDN hosts share the pool).
LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30.0)
_SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)


def _with_read_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(connect=TIMEOUT.connect, read=seconds, write=TIMEOUT.write, pool=TIMEOUT.pool)


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if verify is True:
        # The system's trust store (where a company CA is installed), plus certifi's for minimal images.
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=certifi.where())
        return context
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    if not os.path.isfile(verify):
        raise UsageError(f"CA certificate file {verify!r} not found")
    try:
        return ssl.create_default_context(cafile=verify)
    except ssl.SSLError as exc:
        raise UsageError(f"cannot load CA certificates from {verify!r}: {exc.reason or exc}") from None


def _parse_base_url(base_url: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise UsageError(f"invalid registry URL {base_url!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"invalid registry URL {base_url!r}: expected http(s)://host[:port]")
    if url.path not in ("", "/") or url.query or url.username or url.password:
        raise UsageError(f"invalid registry URL {base_url!r}: a registry URL is only scheme, host and port")
    return url.copy_with(path="/")


def _check_reference(reference: str) -> None:
    if reference.startswith("sha256:"):
        check_digest(reference)
    else:
        check_tag(reference)


def _show(repository: str, reference: str) -> str:
    return f"{repository}@{reference}" if is_digest(reference) else f"{repository}:{reference}"


def _content_type(headers: httpx.Headers) -> str:
    value: str = headers.get("Content-Type", "")
    return value.split(";")[0].strip()


def _where(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{url.port}" if url.port else f"{url.scheme}://{host}"


def _page_tags(raw: bytes, action: str) -> list[str]:
    """The ``tags`` of one ``{"name": ..., "tags": [...]}`` page; ``null`` (no tags, in distribution) is []."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise RegistryError(f"cannot {action}: the registry answered something that is not a tag list", status=200)
    tags = body.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"cannot {action}: the registry's tag list is not a list of names", status=200)
    return tags


def _digest_of(raw: bytes, algorithm: str) -> str | None:
    if algorithm not in ("sha256", "sha384", "sha512"):
        return None
    return f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}"


class RegistryClient:
    """Talks to one registry. Thread-safe: share one instance between worker threads.

    ``base_url`` is ``https://host[:port]`` or ``http://host[:port]``. ``verify`` is True (system and certifi
    CAs), False (no verification), or a CA bundle file or directory. ``transport`` replaces the network (tests).
    ``clock`` is for tests of token expiry. ``read_timeout``: seconds a response may send nothing before the
    request fails (a temporary error, retried); a stalled registry must not hang a run.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "docker-image-pusher",
        clock: Callable[[], float] = time.time,
        read_timeout: float | None = None,
    ) -> None:
        if read_timeout is not None and not read_timeout > 0:
            raise UsageError(f"invalid read timeout {read_timeout}: expected seconds above 0")
        self._base = _parse_base_url(base_url)
        self._auth = RegistryAuth(self._base, credentials, clock=clock)
        self._clock = clock
        self._rate_limit_lock = threading.Lock()
        self._rate_limit: RateLimit | None = None
        self._http_fallback = False
        self._ping_lock = threading.Lock()
        self._pinged = False
        self._sessions_lock = threading.Lock()
        self._mount_sessions: dict[tuple[str, str], UploadSession] = {}
        install_log_redaction()
        self._http = httpx.Client(
            auth=self._auth,
            verify=_ssl_context(verify) if transport is None else True,
            http1=True,
            http2=False,
            limits=LIMITS,
            timeout=TIMEOUT if read_timeout is None else _with_read_timeout(read_timeout),
            follow_redirects=True,
            headers={"User-Agent": user_agent},
            event_hooks=trace_hooks(),
            transport=transport,
        )
        install_redirect_policy(self._http, lambda: self._base)
        self._session = Session(self._http)

    @classmethod
    def for_host(
        cls,
        host: str,
        *,
        scheme: str | None = None,
        credentials: Credentials | None = None,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "docker-image-pusher",
        clock: Callable[[], float] = time.time,
        read_timeout: float | None = None,
    ) -> RegistryClient:
        """A client for ``host[:port]``. Without a scheme: https, except that a loopback host (localhost,
        127.0.0.0/8, [::1]) falls back to plain http when https fails to connect, like docker's default
        insecure registries."""
        if scheme not in (None, "http", "https"):
            raise UsageError(f"invalid scheme {scheme!r} for registry {host}: expected http or https")
        client = cls(
            f"{scheme or 'https'}://{host}",
            credentials=credentials,
            verify=verify,
            transport=transport,
            user_agent=user_agent,
            clock=clock,
            read_timeout=read_timeout,
        )
        client._http_fallback = scheme is None and is_loopback_host(client._base.host)
        return client

    # -- plumbing ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return str(self._base).rstrip("/")

    def _url(self, path: str) -> httpx.URL:
        return self._base.copy_with(path=path)

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit announced by the latest manifest answer that had one (GET or HEAD, any status, 429
        included); None until then. An answer without rate-limit headers leaves the last one in place."""
        with self._rate_limit_lock:
            return self._rate_limit

    def _note_rate_limit(self, headers: httpx.Headers) -> None:
        seen = parse_rate_limit(headers, self._clock())
        if seen is None:
            return
        with self._rate_limit_lock:
            # Threads may report out of order: keep the most recent observation.
            if self._rate_limit is None or seen.observed_at >= self._rate_limit.observed_at:
                self._rate_limit = seen

    def _set_base(self, url: httpx.URL) -> None:
        self._base = url
        self._auth.registry_url = url

    def close(self) -> None:
        """Close the connections. Upload sessions opened by a refused mount and never used just expire."""
        with self._sessions_lock:
            self._mount_sessions.clear()
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    # -- ping and auth -------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: check this is a registry and learn how it wants to be authenticated."""
        with self._ping_lock:
            self._ping_once()
            self._pinged = True

    def _ensure_pinged(self) -> None:
        if not self._pinged:
            with self._ping_lock:
                if not self._pinged:
                    self._ping_once()
                    self._pinged = True

    def _ping_once(self) -> None:
        try:
            self._ping_at(self._base)
            return
        except httpx.HTTPError as exc:
            first = exc
            if not self._http_fallback or self._base.scheme != "https":
                raise error_from_transport(exc, action="reach the registry", url=self._url("/v2/")) from exc
        https_base, http_base = self._base, self._base.copy_with(scheme="http")
        self._set_base(http_base)
        try:
            self._ping_at(http_base)
        except (httpx.HTTPError, PusherError) as exc:
            self._set_base(https_base)
            if is_plain_http_answer_to_tls(first):
                # https reached a plain-HTTP server: what went wrong over http is the real problem.
                if isinstance(exc, httpx.HTTPError):
                    raise error_from_transport(exc, action="reach the registry", url=http_base.join("/v2/")) from exc
                raise
            # Otherwise the https failure says more (a certificate problem, a refused connection).
            raise error_from_transport(first, action="reach the registry", url=https_base.join("/v2/")) from first

    def _ping_at(self, base: httpx.URL) -> None:
        """Raises httpx errors as they are (the caller decides about the http fallback)."""
        request = self._session.build("GET", base.copy_with(path="/v2/"), ping=True)
        response = self._http.send(request)
        if response.status_code in (200, 401):
            return
        if response.status_code == 404:
            raise RegistryError(f"{base.host} does not serve the registry API (GET /v2/ answered 404)", status=404)
        raise error_from_response(response, action=f"reach the registry {base.host}")

    def authenticate(self, repository: str, *, push: bool = False, mount_from: Iterable[str] = ()) -> None:
        """Obtain access to ``repository`` now, so that auth errors surface before any transfer.

        Registers the actions for later requests too: ``pull`` (and ``push``) on ``repository``, ``pull`` on
        every repository in ``mount_from``. When the token says what it grants (a JWT ``access`` claim), a
        missing right is reported here rather than halfway through a push.
        """
        check_repository(repository)
        sources = [check_repository(s) for s in mount_from]
        self._auth.register(repository, push=push, mount_from=sources)
        self._ensure_pinged()
        what = f"{'push to' if push else 'pull from'} {repository} on {self._base.host}"
        request = self._session.build("GET", self._url("/v2/"), repository=repository)
        response = self._session.send(request, action=what)
        if response.status_code != 200:
            raise error_from_response(response, action=what)
        token = self._auth.token_for(repository)
        granted = granted_actions(token, repository) if token else None
        if granted is None or "*" in granted:
            return
        missing = sorted({"pull", "push"} - granted if push else {"pull"} - granted)
        if missing:
            who = "these credentials" if self._auth.has_credentials else "anonymous access"
            raise RegistryAuthError(
                f"not authorized to {what}: the registry grants {who} no {'/'.join(missing)} right on "
                f"{repository}; the repository may not exist, or the credentials lack the rights",
                status=None,
            )

    # -- manifests -----------------------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, *, max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    ) -> FetchedManifest:
        """The manifest or index at ``reference`` (a tag or a digest), raw bytes as served."""
        check_repository(repository)
        _check_reference(reference)
        self._ensure_pinged()
        shown = _show(repository, reference)
        action = f"pull manifest {shown}"
        request = self._session.build(
            "GET",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            repository=repository,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        chunks: list[bytes] = []
        with self._session.stream(request, action=action) as response:
            self._note_rate_limit(response.headers)
            if response.status_code != 200:
                raise error_from_response(response, action=action)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise IntegrityError(f"manifest {shown} is {int(length)} bytes, more than the {max_bytes} allowed")
            size = 0
            try:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise IntegrityError(f"manifest {shown} is larger than the {max_bytes} bytes allowed")
                    chunks.append(chunk)
            except httpx.HTTPError as exc:
                raise error_from_transport(exc, action=action, url=request.url) from exc
            headers = response.headers
        raw = b"".join(chunks)
        digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        media_type = self._media_type(raw, _content_type(headers))
        if media_type in _SCHEMA1:
            raise RegistryError(f"manifest {shown} is in the old schema 1 format, which is not supported")
        if is_digest(reference) and digest != reference:
            raise IntegrityError(f"manifest {shown}: the registry served content with digest {digest}", temporary=True)
        self._check_served_digest(headers, raw, digest, shown)
        return FetchedManifest(raw=raw, media_type=media_type, digest=digest)

    @staticmethod
    def _media_type(raw: bytes, content_type: str) -> str:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return content_type
        value = body.get("mediaType") if isinstance(body, dict) else None
        return value if isinstance(value, str) and value else content_type

    @staticmethod
    def _check_served_digest(headers: httpx.Headers, raw: bytes, digest: str, shown: str) -> None:
        served = headers.get("Docker-Content-Digest", "").strip()
        if not served:
            return
        algorithm = served.partition(":")[0]
        expected = digest if algorithm == "sha256" else _digest_of(raw, algorithm)
        if expected is not None and served != expected:
            raise IntegrityError(
                f"manifest {shown}: the registry says its digest is {served} but the content has {expected}",
                temporary=True,
            )

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """HEAD a manifest (does not count against Docker Hub's pull limit). None if it does not exist."""
        check_repository(repository)
        _check_reference(reference)
        self._ensure_pinged()
        shown = _show(repository, reference)
        request = self._session.build(
            "HEAD",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            repository=repository,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        response = self._session.send(request, action=f"check manifest {shown}")
        self._note_rate_limit(response.headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_from_response(response, action=f"check manifest {shown}")
        served = response.headers.get("Docker-Content-Digest", "").strip() or None
        if served and is_digest(reference) and served.startswith("sha256:") and served != reference:
            raise IntegrityError(f"manifest {shown}: the registry says its digest is {served}", temporary=True)
        length = response.headers.get("Content-Length", "")
        return ManifestHead(
            digest=served or (reference if is_digest(reference) else None),
            media_type=_content_type(response.headers),
            size=int(length) if length.isdigit() else None,
        )

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Push ``raw`` as is (Content-Type ``media_type``) to a tag or digest; returns its digest."""
        check_repository(repository)
        _check_reference(reference)
        digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        shown = _show(repository, reference)
        if is_digest(reference) and reference != digest:
            raise IntegrityError(f"cannot push manifest {shown}: its content has digest {digest}")
        self._auth.register(repository, push=True)
        self._ensure_pinged()
        action = f"push manifest {shown}"
        request = self._session.build(
            "PUT",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            repository=repository,
            headers={"Content-Type": media_type},
            content=raw,
        )
        response = self._session.send(request, action=action)
        if not response.is_success:
            raise error_from_response(response, action=action)
        served = response.headers.get("Docker-Content-Digest", "").strip()
        if served and served.startswith("sha256:") and served != digest:
            raise IntegrityError(f"{action}: the registry stored it as {served}, the content has {digest}")
        return digest

    # -- tags ----------------------------------------------------------------------------------------------

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        """Every tag of ``repository``, in the registry's order, each once: ``GET /v2/<name>/tags/list?n=``
        page after page, following ``Link: <...>; rel="next"`` (only to the registry's own scheme, host and
        port). A repository without tags gives []; an unknown one RegistryNotFoundError."""
        check_repository(repository)
        if page_size <= 0:
            raise UsageError(f"invalid page size {page_size} for listing the tags of {repository}")
        self._ensure_pinged()
        action = f"list the tags of {repository}"
        url = self._url(f"/v2/{repository}/tags/list").copy_with(params={"n": page_size})
        visited: set[str] = set()
        tags: dict[str, None] = {}  # ordered, without duplicates (a registry's "last" may be inclusive)
        for _ in range(MAX_TAG_PAGES):
            visited.add(str(url))
            raw, links, page_url = self._tag_page(url, repository, action)
            tags.update(dict.fromkeys(_page_tags(raw, action)))
            target = next_link(links)
            if target is None:
                return list(tags)
            url = self._next_page_url(page_url, target, action)
            if str(url) in visited:
                raise RegistryError(f"cannot {action}: the registry's next-page links go round in a loop")
        raise RegistryError(f"cannot {action}: the registry sent more than {MAX_TAG_PAGES} pages of tags")

    def _tag_page(self, url: httpx.URL, repository: str, action: str) -> tuple[bytes, list[str], httpx.URL]:
        """One page: its body, its Link header values, and the URL it came from (after any redirect)."""
        request = self._session.build("GET", url, repository=repository, headers={"Accept": "application/json"})
        chunks: list[bytes] = []
        with self._session.stream(request, action=action) as response:
            if response.status_code != 200:
                raise error_from_response(response, action=action)
            size = 0
            try:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > _MAX_TAG_PAGE_BYTES:
                        raise RegistryError(
                            f"cannot {action}: a page of tags is larger than {_MAX_TAG_PAGE_BYTES} bytes", status=200
                        )
                    chunks.append(chunk)
            except httpx.HTTPError as exc:
                raise error_from_transport(exc, action=action, url=request.url) from exc
            return b"".join(chunks), response.headers.get_list("Link"), response.url

    def _next_page_url(self, page_url: httpx.URL, target: str, action: str) -> httpx.URL:
        """The next page's URL, resolved against the page that named it; only on the registry's own origin."""
        url: httpx.URL | None
        try:
            url = page_url.join(target).copy_with(fragment=None)
        except httpx.InvalidURL:
            url = None
        if url is None or url.userinfo:
            raise RegistryError(f"cannot {action}: the registry sent an invalid next-page link")
        base = self._base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise RegistryError(
                f"cannot {action}: refusing to follow the registry's next-page link to {_where(url)}, "
                f"which is not the registry {_where(base)}"
            )
        return url

    # -- blobs ---------------------------------------------------------------------------------------------

    def head_blob(self, repository: str, digest: str) -> int | None:
        """The blob's size, or None if the repository does not have it."""
        check_repository(repository)
        check_digest(digest)
        self._ensure_pinged()
        action = f"check blob {digest} in {repository}"
        request = self._session.build("HEAD", self._url(f"/v2/{repository}/blobs/{digest}"), repository=repository)
        response = self._session.send(request, action=action)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_from_response(response, action=action)
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise RegistryError(f"cannot {action}: the registry sent no size (Content-Length)", status=200)
        return int(length)

    def download_blob(
        self,
        repository: str,
        digest: str,
        path: Path,
        *,
        expected_size: int | None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Download a blob to ``path``, resuming from what ``path`` already holds; returns its size.

        On success ``path`` holds exactly the verified blob (fsynced). A dropped connection keeps the bytes
        (temporary TransferError: call again to resume); a size or digest mismatch deletes them (temporary
        IntegrityError). ``on_progress(delta)`` reports new bytes; the bytes found on disk at the start are
        not reported, and if they must be thrown away their count is reported back once as a negative delta.
        """
        check_repository(repository)
        check_digest(digest)
        if expected_size is not None and expected_size < 0:
            raise UsageError(f"invalid expected size {expected_size} for blob {digest}")
        self._ensure_pinged()
        url = self._url(f"/v2/{repository}/blobs/{digest}")
        return download_blob(
            self._session, url, repository, digest, Path(path), expected_size=expected_size, on_progress=on_progress
        )

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob from another repository. True if mounted.

        False means the registry opened an ordinary upload session instead; the next ``upload_blob`` of the
        same digest to the same repository uses it.
        """
        check_repository(repository)
        check_repository(from_repository)
        check_digest(digest)
        self._auth.register(repository, push=True, mount_from=[from_repository])
        self._ensure_pinged()
        action = f"mount blob {digest} from {from_repository} into {repository}"
        response, session = start_upload(
            self._session,
            self._url(f"/v2/{repository}/blobs/uploads/"),
            repository,
            action=action,
            params={"mount": digest, "from": from_repository},
        )
        if response.status_code == 201:
            return True
        if session is not None:
            with self._sessions_lock:
                self._mount_sessions[(repository, digest)] = session
            return False
        raise error_from_response(response, action=action)

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        open_at: Callable[[int], BinaryIO],
        *,
        chunk_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a blob. ``open_at(offset)`` returns a binary file positioned at ``offset`` (the caller's
        source: a cache file, a member inside a tar); it is called again to resume after an interruption.

        Monolithic PUT by default, chunked PATCHes when ``chunk_size`` is given or when the registry refuses
        the single PUT (400/405/411/413/415/501). ``on_progress(delta)`` reports bytes sent, each byte once.
        """
        check_repository(repository)
        check_digest(digest)
        if size < 0 or (chunk_size is not None and chunk_size <= 0):
            raise UsageError(f"invalid size {size} or chunk size {chunk_size} for blob {digest}")
        self._auth.register(repository, push=True)
        self._ensure_pinged()
        with self._sessions_lock:
            reuse = self._mount_sessions.pop((repository, digest), None)
        Upload(
            self._session,
            self._url(f"/v2/{repository}/blobs/uploads/"),
            repository,
            digest,
            size,
            open_at,
            chunk_size=chunk_size,
            on_progress=on_progress,
            reuse=reuse,
        ).run()
