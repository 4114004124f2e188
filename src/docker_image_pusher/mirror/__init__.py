"""Mirroring: a spec (YAML or a flow parameter) that names images and picks their tags, Prefect-free.

``load_spec`` / ``spec_from_dict`` validate a spec into a ``MirrorSpec``; ``MirrorSpec.images_resolved``
gives each image with the defaults applied; ``select_tags`` picks an image's tags from the source's tag
list; ``is_immutable`` says whether a tag, once at the destination, is never copied again.
"""

from ._select import is_immutable, select_tags
from ._spec import ImageSpec, MirrorSpec, ResolvedImage, load_spec, spec_from_dict
from ._version_order import version_key

__all__ = [
    "ImageSpec",
    "MirrorSpec",
    "ResolvedImage",
    "is_immutable",
    "load_spec",
    "select_tags",
    "spec_from_dict",
    "version_key",
]
