"""The driver processes and their pipes: start them, tell them all the same thing, read what
they say, and stop them (bounded) whatever happened.

Workers are ``spawn``ed, not forked: a fork would copy the parent's state (numpy, the
monitor's psutil handles) into every phone process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from loadtest.phones import worker as worker_module
from loadtest.pipe import Close, Final, ParentMessage, WorkerMessage
from loadtest.plan import WorkerPlan
from loadtest.session.failure import RunFailed

Handler = Callable[[int, WorkerMessage], None]


class WorkerPool:
    """The worker processes of one session; ``close`` runs on every exit, so none is left."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        self.plans = plans
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        self.finished: set[int] = set()  # workers whose Final arrived
        self.closing = False  # a pipe closing now is expected

    def __len__(self) -> int:
        return len(self.conns)

    @property
    def clients(self) -> int:
        return sum(plan.client_count for plan in self.plans)

    def start(self) -> list[int]:
        """Start every worker; returns their pids (for the monitor's driver group)."""
        context = multiprocessing.get_context("spawn")
        for plan in self.plans:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_module.main,
                args=(plan, child),
                daemon=True,
                name=f"loadtest-worker-{plan.index}",
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(process)
        return [p.pid for p in self.procs if p.pid]

    def broadcast(self, message: ParentMessage) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(message)

    def pump(self, timeout: float, handle: Handler) -> None:
        """Hand whatever the workers sent within ``timeout`` seconds to ``handle``."""
        live = [c for c in self.conns if not c.closed]
        for ready in wait(live, timeout):
            assert isinstance(ready, Connection)
            conn = ready
            index = self.conns.index(conn)
            try:
                while conn.poll():
                    message: WorkerMessage = conn.recv()
                    if isinstance(message, Final):
                        self.finished.add(index)
                    handle(index, message)
            except EOFError:
                conn.close()
                if index not in self.finished and not self.closing:
                    raise RunFailed(f"worker {index} exited unexpectedly") from None

    def finish(self) -> None:
        """Tell every worker to close its sockets and exit; join (60 s), then terminate."""
        self.closing = True
        self.broadcast(Close())
        deadline = time.monotonic() + 60
        for process in self.procs:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.procs:
            if process.is_alive():
                process.terminate()
                process.join(5)

    def close(self) -> None:
        """``finish`` again (quick once they are gone), then the pipes: runs on every exit,
        so a pipe that is already broken is no error."""
        with contextlib.suppress(OSError):
            self.finish()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
