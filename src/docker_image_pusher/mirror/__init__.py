"""Mirroring: a spec (YAML or a flow parameter) that names images and picks their tags, Prefect-free.

``load_spec`` / ``spec_from_dict`` validate a spec into a ``MirrorSpec``; ``MirrorSpec.images_resolved``
gives each image with the defaults applied; ``select_tags`` picks an image's tags from the source's tag
list; ``is_immutable`` says whether a tag, once at the destination, is never copied again;
``check_image`` / ``compare_tag`` decide with HEAD requests which tags need copying; ``RateBudget``
pauses before the source's pull limit runs out.
"""

from ._budget import RateBudget, RateLimitExhausted
from ._compare import TagCheck, check_image, compare_tag, expected_digest
from ._select import is_immutable, select_tags
from ._spec import ImageSpec, MirrorSpec, RegistrySpec, ResolvedImage, load_spec, spec_from_dict
from ._version_order import version_key

__all__ = [
    "ImageSpec",
    "MirrorSpec",
    "RateBudget",
    "RateLimitExhausted",
    "RegistrySpec",
    "ResolvedImage",
    "TagCheck",
    "check_image",
    "compare_tag",
    "expected_digest",
    "is_immutable",
    "load_spec",
    "select_tags",
    "spec_from_dict",
    "version_key",
]
