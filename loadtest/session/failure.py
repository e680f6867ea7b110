"""The one way a session fails as opposed to missing a target."""

from __future__ import annotations


class RunFailed(Exception):
    """The session could not run (a server or a worker failed); not a missed target.

    The command exits 2 on it, where a missed target exits 1: a dead hub is not a slow hub.
    """
