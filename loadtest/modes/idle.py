"""``idle``: N authenticated sockets that say nothing, held for ``--hold`` seconds: what a
connection costs the server in RSS (and CPU while idle).

RSS is read before any socket opens (after registering) and as the median over the hold, so
one allocator hiccup does not decide the per-connection number.
"""

from __future__ import annotations

import time

import numpy as np

from loadtest.model.idle import IdleMeasurement, IdleResult
from loadtest.options import Options
from loadtest.session.session import Session


def idle(options: Options, hold_s: float = 10.0) -> IdleResult:
    with Session(options, "idle") as session:
        session.setup()
        session.progress.say(f"holding the connections for {hold_s:g} s…")
        rss_samples, cpu_samples = hold(session, hold_s)
        session.finish()
        result = evaluate(session, rss_samples, cpu_samples)
    return result


def hold(session: Session, hold_s: float) -> tuple[list[int], list[float]]:
    """Server RSS (bytes) and CPU % once a second while the sockets stay open."""
    rss_samples: list[int] = []
    cpu_samples: list[float] = []
    end = time.monotonic() + hold_s
    session.monitor.sample(session.elapsed())
    while time.monotonic() < end:
        session.receive(1.0)
        usage = session.monitor.sample(session.elapsed())
        rss_samples.append(session.monitor.rss("server"))
        cpu = usage.cpu.get("server")
        if cpu is not None:
            cpu_samples.append(cpu)
    return rss_samples, cpu_samples


def evaluate(session: Session, rss_samples: list[int], cpu_samples: list[float]) -> IdleResult:
    info = session.setup_info
    assert info is not None
    before = info.server_rss_before_connect
    after = int(np.median(rss_samples)) if rss_samples else 0
    connected = info.connected_at_start
    per_connection = (
        round((after - before) / max(1, connected) / 1024, 2) if before and after else None
    )
    measurement = IdleMeasurement(
        clients=info.clients,
        connected=connected,
        connect_s=info.connect_s,
        connects_per_s=round(connected / max(0.1, info.connect_s), 1),
        server_rss_before_mb=round(before / 2**20, 1),
        server_rss_after_mb=round(after / 2**20, 1),
        rss_per_connection_kib=per_connection,
        server_cpu_idle_avg=round(float(np.mean(cpu_samples)), 1) if cpu_samples else None,
        setup_errors=dict(session.replies.setup_errors),
        monitored=bool(session.monitor.groups.get("server")),
    )
    return IdleResult(header=session.header(), idle=measurement, passed=connected == info.clients)
