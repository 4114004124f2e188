#!/bin/sh
# System packages the tool's tests and demo use, from Debian 12: the CNCF distribution registry,
# skopeo (the independent client), htpasswd, tmux, and python3-venv for the virtualenv.
set -eu
need=""
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
command -v htpasswd >/dev/null 2>&1 || need="$need apache2-utils"
command -v tmux >/dev/null 2>&1 || need="$need tmux"
command -v curl >/dev/null 2>&1 || need="$need curl"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
