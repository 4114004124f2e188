"""Saving cached images back out as a tar: the way back out of the cache.

    save_images(cache, ["library/nginx/1.27"], Path("nginx.tar"), "docker")   # or "oci"

Both formats are an OCI image layout in a tar; the docker format adds what `docker load` reads:

    oci-layout                {"imageLayoutVersion": "1.0.0"}
    index.json                one descriptor per image: its top manifest or index as cached, annotated with
                              io.containerd.image.name (docker.io/library/nginx:1.27) and
                              org.opencontainers.image.ref.name (1.27)
    manifest.json             docker only: [{"Config": "blobs/sha256/HEX", "RepoTags": ["nginx:1.27"],
                              "Layers": ["blobs/sha256/HEX", ...]}]
    repositories              docker only (if any image has a tag): {"nginx": {"1.27": "HEX of the last layer"}}
    blobs/  blobs/sha256/     folders
    blobs/sha256/HEX          every manifest and index (by content), config and layer, each once, bytes exactly
                              as cached (a compressed layer stays compressed: docker load and skopeo accept it)

This is the layout `docker save` writes since Docker 25 (moby's image/tarexport), except that layers keep
their registry form rather than being the uncompressed tars docker itself writes, and index.json keeps each
image's own manifest (Docker or OCI media type, a whole multi-platform index) instead of a new one.

A multi-platform index: index.json names the whole index and every platform is in blobs/, but a
manifest.json item can describe one platform only: linux/amd64 if the index has it, else the first platform
that is not "unknown" (attestations), else the first child. An entry cached by digest has no tag: it gets
no RepoTags and no ref.name, only io.containerd.image.name NAME@DIGEST. How names print: see _names.

Every blob is hashed as it streams into the tar (IntegrityError on a mismatch); the tar is written as a
temp file next to the target and renamed at the end; members are sorted with mtime 0, uid/gid 0, mode
0644, so saving the same images twice gives the same bytes. Images are taken in sorted key order.
"""

from ._names import ImageName, image_name
from ._plan import PlannedBlob, PlannedImage, SaveFormat, SavePlan, check_format, plan_save
from ._save import save_images
from ._write import SaveResult, write_archive

__all__ = [
    "ImageName",
    "PlannedBlob",
    "PlannedImage",
    "SaveFormat",
    "SavePlan",
    "SaveResult",
    "check_format",
    "image_name",
    "plan_save",
    "save_images",
    "write_archive",
]
