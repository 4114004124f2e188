"""python -m docker_image_pusher.agent --socket PATH [--idle-timeout SECONDS]  (started by the CLI)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._daemon import serve

parser = argparse.ArgumentParser(prog="docker-image-pusher-agent")
parser.add_argument("--socket", required=True, type=Path)
parser.add_argument("--idle-timeout", type=float, default=900.0)
args = parser.parse_args()
# Run logs go to the Prefect API; the agent's own log keeps warnings and its lifecycle only.
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("docker_image_pusher.agent").setLevel(logging.INFO)
serve(args.socket, args.idle_timeout)
