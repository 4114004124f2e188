"""Entry point: run the Typer app, turn every failure into one line on stderr and an exit code.

0 ok   1 unexpected   2 usage   3 auth   4 not found   5 network/registry   6 integrity
7 bad archive   8 cache   130 interrupted
"""

from __future__ import annotations

import sys

import typer

from ..errors import PusherError, from_os_error
from ._app import app

__all__ = ["main"]


def _debug_requested(argv: list[str]) -> bool:
    import os

    return "--debug" in argv or os.environ.get("DOCKER_IMAGE_PUSHER_DEBUG", "").lower() in ("1", "true", "yes")


def _fail(message: str, code: int) -> int:
    one_line = " ".join(message.split())
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()
    return code


def run(argv: list[str]) -> int:
    debug = _debug_requested(argv)
    try:
        result = app(args=argv, prog_name="docker-image-pusher", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except PusherError as err:
        if debug:
            import traceback

            traceback.print_exc()
        return _fail(err.message, err.exit_code)
    except typer.Exit as err:
        return int(err.exit_code)
    except typer.Abort:
        return _fail("interrupted", 130)
    except typer.TyperException as err:  # Typer's own (vendored click) usage errors
        if type(err).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(err.format_message() + "\n")
            return 0
        return _fail(err.format_message().replace("\n", " "), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as err:
        if debug:
            import traceback

            traceback.print_exc()
        mapped = from_os_error(err)
        return _fail(mapped.message, mapped.exit_code)
    except Exception as err:
        if debug:
            import traceback

            traceback.print_exc()
        return _fail(f"unexpected {type(err).__name__}: {err} (run with --debug for details)", 1)


def main() -> None:
    code = run(sys.argv[1:])
    sys.exit(code)
