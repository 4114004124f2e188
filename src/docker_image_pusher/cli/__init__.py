"""The command line: a thin layer that turns flags into settings, runs a flow, and maps errors to exit codes."""

from ._main import main

__all__ = ["main"]
