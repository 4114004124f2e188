r"""The mirror spec: which images and tags to copy from one registry to another, and how.

A spec is a YAML file (``load_spec``) or, for a deployment, the same structure passed as a flow
parameter (``spec_from_dict``; ``MirrorSpec.to_dict`` gives it back as plain JSON values)::

    source:
      registry: https://registry-1.docker.io   # http(s)://host[:port] or host[:port], as the CLI's --registry
      skip_tls: false            # optional; contradicts ca_file
      ca_file: null              # optional; a relative path is relative to the working directory
      read_timeout: null         # optional: seconds the registry may send nothing (default: --read-timeout, 60)
      credentials_secret: null   # optional: name of a Prefect Secret block holding the credentials
    destination:
      registry: http://127.0.0.1:5000
      repository_prefix: mirror  # optional; joined with '/': library/alpine -> mirror/library/alpine
      # skip_tls, ca_file, credentials_secret: as for source
    defaults:                    # optional: for every image that does not set the key itself
      platforms: [linux/amd64]   # default []: all platforms (the whole index is copied)
      immutable: ['^v?\d+\.\d+\.\d+$']
    images:
      - repository: library/alpine
        destination: tools/alpine   # optional; default: repository_prefix/repository
        tags: ["3.19", "3.20"]     # explicit tags
        include: ['^3\.\d+$']      # regexes that must match a whole listed tag
        exclude: ['-rc\d*$']       # regexes searched in every tag
        newest: 3                   # only the 3 newest (in version order) of what include selected
        platforms: [linux/arm64]    # overrides defaults.platforms; [] means all
        immutable: []               # overrides defaults.immutable; [] means none
    rate_limit:                  # optional
      reserve: 2                 # pause when RateLimit-Remaining falls to this many (default 2)
      max_wait_seconds: 3600     # longest pause; beyond it the remaining images fail (default 3600)

Names. Repositories follow the reference grammar (``docker_image_pusher.reference``); on Docker Hub a
one-component name gets ``library/``, exactly as ``-r alpine`` on the command line. The prefix is not
applied to an image's explicit ``destination``. No two images may copy to the same destination
repository, and no image may copy a repository onto itself.

Tag selection (``select_tags``): an image must set at least one of ``tags``, ``include`` and ``newest``;
mirroring every tag is asked for explicitly with ``include: ['.*']``.

1. ``tags`` are kept as written, without asking the source for its tag list; one the source does not
   have fails later as not found.
2. ``include`` and ``newest`` work on the source's tag list: a listed tag is a candidate if it fully
   matches any ``include`` pattern (every listed tag is, when only ``newest`` is given).
3. ``exclude`` drops any tag, explicit or listed, in which one of its patterns is found (``re.search``).
4. ``newest: N`` keeps the N highest candidates in version order (``version_key``). It never drops an
   explicit tag: ``tags: [latest]`` with ``newest: 3`` is ``latest`` and the three newest versions.
5. The result is the union of 1 and 4, without duplicates, oldest first.

``immutable`` patterns (full match) name tags that are never copied again once the destination has them.
Regexes are Python ``re`` syntax; each must compile when the spec loads.

Errors. Every problem is a ``UsageError`` with one line naming the spec, the line in the file when
there is one, and the path of the faulty value in the document (indexes from 0)::

    mirror spec mirror.yaml, line 14: images[2].include[0] (library/alpine): bad regex '(': missing ), ...
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ..endpoint import DEFAULT_READ_TIMEOUT, Endpoint, parse_registry_url
from ..errors import UsageError
from ..manifest import parse_platform
from ..reference import DOCKER_HUB_API_HOST, check_repository, check_tag

__all__ = [
    "DefaultsSpec",
    "DestinationSpec",
    "ImageSpec",
    "MirrorSpec",
    "RateLimitSpec",
    "RegistrySpec",
    "ResolvedImage",
    "load_spec",
    "spec_from_dict",
]

_ERROR_TYPE = "mirror_spec"
_BLOCK_NAME = re.compile(r"[a-z0-9-]+")  # what Prefect accepts as a block document name
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")


def _problem(reason: str) -> PydanticCustomError:
    # The reason goes in through the context: a template would read the braces of a regex as fields.
    return PydanticCustomError(_ERROR_TYPE, "{reason}", {"reason": reason})


class _SpecProblem(UsageError):
    """A problem found across fields, where pydantic cannot know the path; ``load_spec`` adds the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _checked(check: Callable[[str], object]) -> AfterValidator:
    """A validator that runs one of the CLI's checks and reports its message at the value's path."""

    def run(value: str) -> str:
        try:
            check(value)
        except UsageError as err:
            raise _problem(err.message) from None
        return value

    return AfterValidator(run)


def _check_registry(value: str) -> str:
    if "@" in value:  # do not echo it: the part before '@' would be credentials
        raise UsageError("a registry URL cannot carry credentials; use credentials_secret")
    host, _ = parse_registry_url(value) if value else ("", None)
    if not _HOST.fullmatch(host):
        raise UsageError(f"invalid registry {value!r}: expected http(s)://host[:port] or host[:port]")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise UsageError(f"bad regex {value!r}: {err}") from None
    return value


def _check_block_name(value: str) -> str:
    if not _BLOCK_NAME.fullmatch(value):
        raise UsageError(f"invalid block name {value!r}: lowercase letters, digits and '-'")
    return value


def _strip_prefix(value: str) -> str:
    prefix = value.rstrip("/")
    if prefix:
        try:
            check_repository(prefix)
        except UsageError as err:
            raise _problem(err.message) from None
    return prefix


def _check_file_name(value: str) -> str:
    if not value:
        raise UsageError("empty file name")
    return value


Repository = Annotated[StrictStr, _checked(check_repository)]
Tag = Annotated[StrictStr, _checked(check_tag)]
Regex = Annotated[StrictStr, _checked(_check_regex)]
PlatformText = Annotated[StrictStr, _checked(parse_platform)]


class _Strict(BaseModel):
    """Frozen, and every key must be known: a typo is an error, with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if data is None:  # an empty section (``rate_limit:`` and nothing under it): all defaults
            return {}
        if isinstance(data, Mapping):
            keys = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), keys, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(keys)
                    # The key goes into the path of the message (and finds its line in the file).
                    raise PydanticCustomError(_ERROR_TYPE, "{reason}", {"reason": f"unknown key ({hint})", "key": key})
        return data


class RegistrySpec(_Strict):
    """One side of the mirror: where the registry is and how to reach it."""

    registry: Annotated[StrictStr, _checked(_check_registry)]
    skip_tls: StrictBool = False
    ca_file: Annotated[StrictStr, _checked(_check_file_name)] | None = None
    credentials_secret: Annotated[StrictStr, _checked(_check_block_name)] | None = None
    read_timeout: Annotated[StrictFloat, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None  # None: 60 s

    @model_validator(mode="after")
    def _tls_is_consistent(self) -> Self:
        if self.skip_tls and self.ca_file:
            raise _problem("skip_tls and ca_file contradict each other: drop one")
        return self

    @property
    def host(self) -> str:
        return parse_registry_url(self.registry)[0]

    @property
    def scheme(self) -> str | None:
        return parse_registry_url(self.registry)[1]

    def endpoint(self, auth_ref: str | None = None) -> Endpoint:
        """The Endpoint for this registry; credentials are registered by the caller (``auth_ref``)."""
        return Endpoint(
            host=self.host,
            scheme=self.scheme,
            verify_tls=not self.skip_tls,
            ca_file=self.ca_file,
            auth_ref=auth_ref,
            read_timeout=self.read_timeout if self.read_timeout is not None else DEFAULT_READ_TIMEOUT,
        )


class DestinationSpec(RegistrySpec):
    repository_prefix: Annotated[StrictStr, AfterValidator(_strip_prefix)] = ""


class DefaultsSpec(_Strict):
    platforms: tuple[PlatformText, ...] = ()
    immutable: tuple[Regex, ...] = ()


class ImageSpec(_Strict):
    """One source repository and the rules that pick its tags (see the module docstring)."""

    repository: Repository
    destination: Repository | None = None
    tags: tuple[Tag, ...] = ()
    include: tuple[Regex, ...] = ()
    exclude: tuple[Regex, ...] = ()
    newest: Annotated[StrictInt, Field(ge=1)] | None = None
    platforms: tuple[PlatformText, ...] | None = None  # None: the defaults
    immutable: tuple[Regex, ...] | None = None  # None: the defaults

    @model_validator(mode="after")
    def _selects_something(self) -> Self:
        if not self.tags and not self.include and self.newest is None:
            raise _problem("no tags selected: set tags, include or newest (every tag: include: ['.*'])")
        return self

    @property
    def needs_listing(self) -> bool:
        """Whether selection needs the source's tag list (``include`` or ``newest``)."""
        return bool(self.include) or self.newest is not None


class RateLimitSpec(_Strict):
    reserve: Annotated[StrictInt, Field(ge=0)] = 2
    max_wait_seconds: Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] = 3600.0


@dataclass(frozen=True)
class ResolvedImage:
    """An image with the spec's defaults applied and both repository names worked out."""

    index: int  # position in the spec's images, for messages
    repository: str  # at the source, as the registry names it (library/ added on Docker Hub)
    destination: str  # at the destination
    tags: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    newest: int | None
    platforms: tuple[str, ...]  # empty: every platform
    immutable: tuple[str, ...]

    @property
    def needs_listing(self) -> bool:
        return bool(self.include) or self.newest is not None


def _hub_name(host: str, repository: str) -> str:
    return f"library/{repository}" if host == DOCKER_HUB_API_HOST and "/" not in repository else repository


class MirrorSpec(_Strict):
    source: RegistrySpec
    destination: DestinationSpec
    defaults: DefaultsSpec = DefaultsSpec()
    images: tuple[ImageSpec, ...]
    rate_limit: RateLimitSpec = RateLimitSpec()

    @model_validator(mode="after")
    def _repositories_are_consistent(self) -> Self:
        if not self.images:
            raise _SpecProblem("images", "the spec lists no images")
        seen: dict[str, int] = {}
        for i, image in enumerate(self.images):
            key = "destination" if image.destination else "repository"
            source, target = self._names(image)
            if len(target) > 255:
                raise _SpecProblem(f"images[{i}].{key}", f"destination repository {target!r} is too long")
            if self.source.host == self.destination.host and source == target:
                raise _SpecProblem(f"images[{i}].{key}", f"copies {source} onto itself (same registry and name)")
            if target in seen:
                other = seen[target]
                raise _SpecProblem(
                    f"images[{i}].{key}",
                    f"destination repository {target!r} is already that of images[{other}] "
                    f"({self.images[other].repository})",
                )
            seen[target] = i
        return self

    def _names(self, image: ImageSpec) -> tuple[str, str]:
        source = _hub_name(self.source.host, image.repository)
        if image.destination:
            return source, _hub_name(self.destination.host, image.destination)
        prefix = self.destination.repository_prefix
        return source, f"{prefix}/{source}" if prefix else _hub_name(self.destination.host, source)

    def images_resolved(self) -> Iterator[ResolvedImage]:
        """Each image with defaults applied, in the order of the spec."""
        for i, image in enumerate(self.images):
            source, target = self._names(image)
            platforms = self.defaults.platforms if image.platforms is None else image.platforms
            yield ResolvedImage(
                index=i,
                repository=source,
                destination=target,
                tags=image.tags,
                include=image.include,
                exclude=image.exclude,
                newest=image.newest,
                platforms=tuple(dict.fromkeys(str(parse_platform(p)) for p in platforms)),
                immutable=self.defaults.immutable if image.immutable is None else image.immutable,
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for a flow parameter); ``spec_from_dict`` turns them back into an equal spec."""
        return self.model_dump(mode="json")


def spec_from_dict(data: Mapping[str, Any], source_name: str = "<parameters>") -> MirrorSpec:
    """Validate a spec given as a mapping (a deployment's parameter, or parsed YAML)."""
    return _build(data, source_name, None)


def load_spec(path: str | Path) -> MirrorSpec:
    """Read and validate a YAML spec file. Every problem is a one-line ``UsageError``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"mirror spec {name}: not UTF-8 text") from None
    except OSError as err:
        raise UsageError(f"mirror spec {name}: cannot read it: {err.strerror or err}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"mirror spec {name}{_yaml_problem(err)}") from None
    if root is None:
        raise UsageError(f"mirror spec {name}: the file is empty")
    duplicate = _duplicate_key(root, "", set())
    if duplicate:
        where, key, line = duplicate
        raise UsageError(f"mirror spec {name}, line {line}: {where or 'top level'}: key {key!r} appears twice")
    return _build(data, name, root)


def _build(data: Any, name: str, root: Any) -> MirrorSpec:
    if not isinstance(data, Mapping):
        raise UsageError(f"mirror spec {name}: expected a mapping of source, destination, images, got {_kind(data)}")
    try:
        return MirrorSpec.model_validate(data)
    except _SpecProblem as problem:
        loc = _loc_from_path(problem.path)
        raise UsageError(_message(name, root, data, loc, problem.reason)) from None
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        ctx = first.get("ctx") or {}
        loc = (*first["loc"], str(ctx["key"])) if "key" in ctx else first["loc"]
        raise UsageError(_message(name, root, data, loc, _describe(first))) from None


def _message(name: str, root: Any, data: Mapping[str, Any], loc: tuple[str | int, ...], reason: str) -> str:
    line = _line_of(root, loc) if root is not None else None
    where = f"mirror spec {name}" + (f", line {line}" if line else "")
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if len(loc) >= 2 and loc[0] == "images" and isinstance(loc[1], int):
        repository = _image_repository(data, loc[1])
        if repository:
            path += f" ({repository})"
    return f"{where}: {path}: {reason}" if path else f"{where}: {reason}"


def _image_repository(data: Mapping[str, Any], index: int) -> str | None:
    images = data.get("images")
    if isinstance(images, list | tuple) and 0 <= index < len(images) and isinstance(images[index], Mapping):
        repository = images[index].get("repository")
        if isinstance(repository, str):
            return repository
    return None


def _loc_from_path(path: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping (key: value)",
    "dict_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _describe(error: ErrorDetails) -> str:
    """One line for one pydantic error, in the spec's words rather than pydantic's."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == _ERROR_TYPE:
        return str(ctx.get("reason", error["msg"]))
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":  # _known_keys catches these first; kept for safety
        return "unknown key"
    if kind == "greater_than_equal":
        bound = ctx.get("ge")
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"must be at least {bound}, got {_kind(value)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_kind(value)}"
        if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            message += " (put it in quotes: YAML reads an unquoted 3.10 as the number 3.1)"
        return message
    return str(error["msg"])


def _yaml_problem(err: Any) -> str:
    """', line N: YAML problem' from a PyYAML error, on one line."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    line = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{line}: not valid YAML: {' '.join(str(problem).split())}"


def _duplicate_key(node: Any, path: str, seen: set[int]) -> tuple[str, str, int] | None:
    """The first key that appears twice in one mapping, as (path, key, line); PyYAML keeps the last silently."""
    if id(node) in seen:  # an alias of a node already walked
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in keys:
                    return path, str(key_node.value), int(key_node.start_mark.line) + 1
                keys.add(key_node.value)
                found = _duplicate_key(value_node, f"{path}.{key_node.value}".lstrip("."), seen)
                if found:
                    return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, f"{path}[{i}]", seen)
            if found:
                return found
    return None


def _line_of(root: Any, loc: tuple[str | int, ...]) -> int | None:
    """The line of the value at ``loc``, or of the deepest mapping or list on the way to it."""
    node = root
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    mark = getattr(node, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else None
