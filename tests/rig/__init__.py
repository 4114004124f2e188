"""Integration-test rig: real registries (docker-registry serve), a token server, sample images, skopeo.

Modules: registry (start/stop registries), token_server (Docker token auth), images (OCI layouts built in
Python), layers (streaming tar/gzip layer writer), skopeo (reference client), certs, net, fixtures (pytest).
"""
