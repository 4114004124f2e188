"""The agent: a long-lived local process that keeps Prefect loaded and runs flows for the CLI.

Importing Prefect costs about 2 s and a process's first flow run about 2 s more of one-time set-up; a
warm process runs the same flow in about 1 s. So the CLI hands its runs to the agent over a Unix socket
and renders the progress events the agent streams back (as Gradle's daemon does). The agent is started
on first use, serves runs concurrently, exits after being idle for a while, and is restarted when the
installed code changes. A run whose CLI goes away (Ctrl-C, SIGKILL) is cancelled between two chunks and
keeps its partial downloads for the next run to resume.
"""

from ._client import AgentUnavailable, run_in_agent, stop_agents

__all__ = ["AgentUnavailable", "run_in_agent", "stop_agents"]
