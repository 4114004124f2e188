"""Version order for tags: the sort key behind a mirror's ``newest: N``.

"Newest" means highest in version order, not most recently pushed. A registry's tag list
(``GET /v2/<name>/tags/list``) carries no dates; learning when each tag was built would cost a manifest
GET (plus a config blob GET) per tag, and Docker Hub counts manifest GETs against its pull limit. So, as
dregsy's "keep latest N" does, the order is read from the tag names alone:

* A tag is split into runs of digits and runs of letters; anything else (``.``, ``-``, ``_``) only
  separates runs. Numbers compare as numbers, so ``1.9 < 1.10 < 2.0`` and ``3.19 < 3.20``. Words
  compare without regard to case.
* A leading ``v`` before a digit is ignored: ``v1.2.3`` sorts with ``1.2.3``.
* A pre-release word (``dev``, ``snapshot``, ``alpha``, ``beta``, ``pre``, ``preview``, ``rc``, in that
  order) sorts before the release it belongs to: ``1.0.0-alpha < 1.0.0-beta.2 < 1.0.0-rc1 < 1.0.0``.
  Any other word after a version is a variant or a build and sorts after it:
  ``1.0.0 < 1.0.0-alpine < 1.0.1``.
* A tag without any digit (``latest``, ``edge``, ``stable``) is not a version: such tags sort before all
  versions, alphabetically among themselves, so ``newest`` prefers real versions.
* Tags that compare equal by these rules (``1.0`` and ``v1.0``, ``1.0`` and ``1-0``) are ordered by
  their exact text, so the order is total and stable.

Tags that look like numbers but are not versions (``20240606``, a short commit hash with digits) sort by
those numbers too; a mirror that keeps such tags apart from versions says so with ``include``.
"""

from __future__ import annotations

import re

__all__ = ["VersionKey", "version_key"]

# One run of a tag, as a uniform triple so that keys of any two tags compare without type errors:
# (class, number or pre-release rank, word). The classes order pre-release words before the end of a
# tag, the end before variant words, and variant words before numbers.
Token = tuple[int, int, str]
VersionKey = tuple[int, tuple[Token, ...], str]

_PRE_RELEASE = {"dev": 0, "snapshot": 0, "alpha": 1, "beta": 2, "pre": 3, "preview": 3, "rc": 4}
_PRE, _END, _WORD, _NUMBER = 0, 1, 2, 3
_RUN = re.compile(r"[0-9]+|[a-zA-Z]+")
_DIGIT = re.compile(r"[0-9]")
_LEADING_V = re.compile(r"^[vV](?=[0-9])")


def version_key(tag: str) -> VersionKey:
    """Sort key for ``tag``; ``sorted(tags, key=version_key)`` puts the newest last."""
    if not _DIGIT.search(tag):
        return (0, ((_WORD, 0, tag.lower()),), tag)
    tokens: list[Token] = []
    for run in _RUN.findall(_LEADING_V.sub("", tag, count=1)):
        if run[0] in "0123456789":
            tokens.append((_NUMBER, int(run), ""))
        else:
            word = run.lower()
            rank = _PRE_RELEASE.get(word)
            tokens.append((_PRE, rank, word) if rank is not None else (_WORD, 0, word))
    tokens.append((_END, 0, ""))
    return (1, tuple(tokens), tag)
