"""The target's servers for one session: spawned by the kit (a ``Fleet``) or given as URLs.

It also registers their processes with the monitor (so CPU and RSS are reported per group)
and says when one of them died, which fails the session rather than skewing its numbers.
"""

from __future__ import annotations

import time

from loadtest.fleet import FakeProvider, Fleet
from loadtest.monitor import Monitor
from loadtest.options import Options
from loadtest.plan import HUB
from loadtest.session.failure import RunFailed
from loadtest.session.progress import Progress


class Servers:
    """Where the phones connect, and the processes behind it when the kit started them."""

    def __init__(
        self,
        urls: list[str],
        fleet: Fleet | None,
        description: str,
        provider: FakeProvider | None = None,
    ) -> None:
        self.urls = urls
        self.fleet = fleet
        self.description = description  # "external" or "spawned in 4.2 s"
        self.provider = provider  # the push mix's local FCM

    @classmethod
    def start(cls, options: Options, monitor: Monitor, progress: Progress) -> Servers:
        o = options
        if o.hub_urls:
            if o.hub_pids:
                monitor.add("server", o.hub_pids)
            return cls([u.rstrip("/") for u in o.hub_urls], None, "external")
        fleet = Fleet(keep=o.keep)
        started = time.monotonic()
        provider = None
        try:
            if o.target == HUB:
                env = dict(o.hub_env)
                if o.effective_mix().pushes or o.push_provider:
                    progress.say("starting the fake FCM (HTTP/2 over TLS)…")
                    provider = fleet.start_fake_fcm()
                    monitor.add("provider", [provider.server.process.pid])
                    env = {**provider.env, **env}
                progress.say(f"starting PostgreSQL, Redis and {o.spawn_hubs} hub node(s)…")
                servers = fleet.start_hubs(o.spawn_hubs, env)
                monitor.add("postgres", [fleet.postgres_pid], children=True)
                monitor.add("redis", [fleet.redis_pid])
            else:
                progress.say(f"starting the {o.target}…")
                servers = [fleet.start_peer(o.target)]
        except BaseException:  # whatever started before the failure is stopped, then re-raised
            progress.say("stopping the servers…")
            fleet.stop()
            raise
        urls = [s.url for s in servers]
        monitor.add("server", [s.process.pid for s in servers])
        if len(servers) > 1:
            for number, server in enumerate(servers, 1):
                monitor.add(f"server{number}", [server.process.pid])
        description = f"spawned in {time.monotonic() - started:.1f} s"
        progress.say(f"  {', '.join(urls)} ({fleet.workdir})")
        return cls(urls, fleet, description, provider)

    def check(self) -> None:
        """RunFailed if a spawned server exited (external ones are not ours to watch)."""
        if self.fleet is None:
            return
        for server in self.fleet.servers:
            if server.process.poll() is not None:
                raise RunFailed(
                    f"{server.name} exited (code {server.process.returncode}):\n{server.log_tail()}"
                )

    def stop(self, progress: Progress) -> None:
        if self.fleet is not None:
            progress.say("stopping the servers…")
            self.fleet.stop()
            self.fleet = None
