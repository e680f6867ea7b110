"""A loopback TCP proxy that a test can cut and restore, to take PostgreSQL or Redis away
from a hub node without touching the servers other tests share."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.support import free_port


@dataclass
class TcpProxy:
    target_host: str | None
    target_port: int | None
    target_unix: str | None = None
    port: int = field(default_factory=free_port)
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.target_unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self.target_unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
        except OSError:
            writer.close()
            return
        self._pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._pipes -= {writer, up_writer}

    async def cut(self) -> None:
        """Refuse new connections and break every open one, as a crashed server would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            transport = pipe.transport
            transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()


def postgres_proxy_for(database_url: str) -> tuple[TcpProxy, str]:
    """A proxy in front of the test database and the URL that goes through it."""
    parts = urlsplit(database_url)
    database = parts.path.lstrip("/")
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir:
        proxy = TcpProxy(None, None, f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
    else:
        proxy = TcpProxy(parts.hostname, parts.port or 5432)
    user = parts.username or "postgres"
    return proxy, f"postgresql://{user}@127.0.0.1:{proxy.port}/{database}"


def redis_proxy_for(redis_url: str) -> tuple[TcpProxy, str]:
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname, parts.port or 6379)
    return proxy, f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}"
