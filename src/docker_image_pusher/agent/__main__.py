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
# Run logs go to the Prefect API; the agent's own log keeps warnings and its lifecycle only. Prefect's run
# loggers log at INFO and propagate to the root's handler, so the handler, not the root's level, must filter.
_LIFECYCLE = "docker_image_pusher.agent"
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
handler.addFilter(lambda record: record.levelno >= logging.WARNING or record.name == _LIFECYCLE)
logging.basicConfig(level=logging.WARNING, handlers=[handler])
logging.getLogger(_LIFECYCLE).setLevel(logging.INFO)
serve(args.socket, args.idle_timeout)
