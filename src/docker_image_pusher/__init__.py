"""docker-image-pusher: move container images between registries, tar files and a local cache.

The core (this package minus ``flows`` and ``tasks``) never imports Prefect.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
