"""The soak's ``Killer``: every ``every_s`` it ``kill -9``s the next hub node (round robin) and
starts it again ``down_s`` later on the same port with the same environment.

Everything it does is non-blocking (a kill waits for the reaped pid, a restart is a ``Popen``
and short health probes) and it is polled from the session's loop every ≤ 0.2 s, so the
workers' ticks keep flowing while nodes come and go. No kill happens while another node is
down; a node that exits by itself is restarted too, and recorded (the soak then fails).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from loadtest.fleet import Fleet, Server
from loadtest.model.soak import KillEvent, KillSummary
from loadtest.monitor import Monitor
from loadtest.options import KillPlan
from loadtest.session.progress import Progress
from loadtest.session.schedule import NS, Schedule


@dataclass
class Node:
    """One hub node's state between kills: up, down (restart due), starting (probing), failed."""

    number: int
    server: Server
    status: str = "up"  # up | down | starting | failed
    restart_at_ns: int = 0
    ready_by_ns: int = 0
    next_probe_ns: int = 0
    attempts: int = 0
    down_since_ns: int = 0
    pids: list[int] = field(default_factory=list)

    def went_down(self, now: int, down_s: float) -> None:
        self.status = "down"
        self.down_since_ns = now
        self.restart_at_ns = now + int(down_s * NS)
        self.attempts = 0


class Killer:
    """Kills and restarts hub nodes on schedule; ``poll()`` is called every ≤ 0.2 s."""

    def __init__(
        self,
        fleet: Fleet,
        monitor: Monitor,
        progress: Progress,
        plan: KillPlan,
        duration_s: float,
    ) -> None:
        self.fleet = fleet
        self.monitor = monitor
        self.progress = progress
        self.plan = plan
        self.duration_s = duration_s
        self.nodes = [
            Node(number, server, pids=[server.process.pid])
            for number, server in enumerate(fleet.servers, 1)
        ]
        self.events: list[KillEvent] = []
        self.kills = 0
        self.next_kill = 1
        self.start_ns = 0  # the schedule's, from the first poll on

    def t(self, now_ns: int) -> float:
        return round((now_ns - self.start_ns) / NS, 2)

    def record(self, event: KillEvent) -> None:
        self.events.append(event)
        details = event.details()
        text = ", ".join(f"{k} {v}" for k, v in details.items() if k != "log_tail")
        self.progress.say(
            f"  ** {event.kind} node {event.node} at {event.t:.1f} s"
            + (f" ({text})" if text else "")
        )

    def poll(self, schedule: Schedule) -> None:
        """Move every node's state on, and kill the next one when it is due."""
        self.start_ns = schedule.start_ns
        now = time.monotonic_ns()
        for node in self.nodes:
            self.step_node(node, now)
        due = self.start_ns + int(self.next_kill * self.plan.every_s * NS)
        if now >= due and self.t(due) < self.duration_s:
            self.next_kill += 1
            victim = self.nodes[self.kills % len(self.nodes)]
            if all(n.status == "up" for n in self.nodes):
                self.kill(victim, now)
            else:
                down = [n.number for n in self.nodes if n.status != "up"]
                self.record(
                    KillEvent(
                        self.t(now), "kill_skipped", victim.number, reason=f"nodes {down} not up"
                    )
                )

    def kill(self, node: Node, now: int) -> None:
        pid = self.fleet.kill(node.server)
        self.kills += 1
        node.went_down(now, self.plan.down_s)
        self.record(KillEvent(self.t(now), "kill", node.number, pid=pid))

    def step_node(self, node: Node, now: int) -> None:
        server = node.server
        if node.status == "up" and server.process.poll() is not None:
            # nobody killed it: a crash; restart it like a killed node, and fail the soak
            node.went_down(now, self.plan.down_s)
            self.record(
                KillEvent(
                    self.t(now),
                    "unexpected_exit",
                    node.number,
                    code=server.process.returncode,
                    log_tail=server.log_tail(20),
                )
            )
        elif node.status == "down" and now >= node.restart_at_ns:
            self.respawn(node, now)
        elif node.status == "starting":
            self.probe(node, now)

    def respawn(self, node: Node, now: int) -> None:
        pid = self.fleet.respawn(node.server)
        node.pids.append(pid)
        node.attempts += 1
        node.status = "starting"
        node.ready_by_ns = now + int(self.plan.restart_timeout_s * NS)
        node.next_probe_ns = now + int(0.2 * NS)
        # the restarted node's new process, measured under the same names
        self.monitor.replace("server", [s.process.pid for s in self.fleet.servers])
        self.monitor.replace(f"server{node.number}", [pid])

    def probe(self, node: Node, now: int) -> None:
        """A starting node: up when /healthz answers; retried or failed when it exits or
        takes longer than ``restart_timeout_s``."""
        server = node.server
        exited = server.process.poll() is not None
        if not exited and now >= node.next_probe_ns:
            node.next_probe_ns = now + int(0.25 * NS)
            if self.fleet.answers(server, 0.5):
                node.status = "up"
                self.record(
                    KillEvent(
                        self.t(now),
                        "restarted",
                        node.number,
                        pid=server.process.pid,
                        down_s=round((now - node.down_since_ns) / NS, 1),
                        ready_s=round((now - node.restart_at_ns) / NS, 1),
                    )
                )
                return
        if exited or now > node.ready_by_ns:
            if not exited:
                self.fleet.kill(server)
            tail = server.log_tail(20)
            if node.attempts < self.plan.restart_attempts:
                node.status = "down"
                node.restart_at_ns = now + NS
                self.record(
                    KillEvent(
                        self.t(now),
                        "restart_retry",
                        node.number,
                        attempt=node.attempts,
                        log_tail=tail,
                    )
                )
            else:
                node.status = "failed"
                self.record(KillEvent(self.t(now), "restart_failed", node.number, log_tail=tail))

    def settle(self, schedule: Schedule, timeout_s: float) -> None:
        """Wait (bounded) until no node is down or starting."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll(schedule)
            if all(n.status in ("up", "failed") for n in self.nodes):
                return
            time.sleep(0.2)

    def nodes_up(self) -> int:
        return sum(1 for n in self.nodes if n.status == "up")

    def summary(self) -> KillSummary:
        kinds = [e.kind for e in self.events]
        restarts = [e for e in self.events if e.kind == "restarted"]
        return KillSummary(
            kill_every_s=self.plan.every_s,
            down_for_s=self.plan.down_s,
            planned=max(0, math.ceil(self.duration_s / self.plan.every_s) - 1),
            kills=kinds.count("kill"),
            skipped=kinds.count("kill_skipped"),
            restarts=len(restarts),
            restart_ready_s=[e.ready_s for e in restarts if e.ready_s is not None],
            restart_retries=kinds.count("restart_retry"),
            restart_failures=kinds.count("restart_failed"),
            unexpected_exits=kinds.count("unexpected_exit"),
            nodes_up_at_end=self.nodes_up(),
            nodes=len(self.nodes),
            events=self.events,
        )
