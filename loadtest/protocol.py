"""Socket.IO clients for the driver: one connection = one phone's socket.

``RawSocket`` speaks Engine.IO 4 / Socket.IO 5 text framing straight over an aiohttp
websocket (``/socket.io/?EIO=4&transport=websocket``):

* server → ``0{"sid", "pingInterval", ...}`` (Engine.IO open), client → ``40{auth}``;
  server → ``40{"sid"}`` (connected) or ``44{"message", "data"}`` (refused);
* ``42["event", data]`` an event, ``42<n>["event", data]`` one that wants ack ``43<n>[...]``;
* server ``2`` (ping) → client ``3`` (pong); ``41`` / ``1`` disconnect / close.

It sends without awaiting (the frame goes into the transport's buffer at once), so an
open-loop schedule is never held up by one slow socket, and costs a fraction of
python-socketio's ``AsyncClient`` per event. ``SioSocket`` wraps ``socketio.AsyncClient`` with
the same interface, for comparison (``--client sio``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

EventHandler = Callable[["BaseSocket", str, Any], None]
AckHandler = Callable[[Any], None]


class ConnectRefused(Exception):
    """The server answered the Socket.IO connect with an error (``44``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class BaseSocket:
    """What a scenario needs from a connection."""

    connected: bool = False
    on_event: EventHandler | None = None
    on_disconnect: Callable[[BaseSocket], None] | None = None
    tag: Any = None

    async def connect(self, url: str, auth: dict[str, Any], timeout: float = 20) -> None:
        raise NotImplementedError

    def emit(self, event: str, data: Any, on_ack: AckHandler | None = None) -> bool:
        """Send now; ``on_ack(payload)`` is called with the ack's first argument."""
        raise NotImplementedError

    def pending_acks(self) -> int:
        raise NotImplementedError

    def write_buffer(self) -> int:
        return 0

    async def close(self) -> None:
        raise NotImplementedError


def socketio_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return f"{base}/socket.io/?EIO=4&transport=websocket"


class RawSocket(BaseSocket):
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._acks: dict[int, AckHandler] = {}
        self._next_ack = 0
        self._reader: asyncio.Task[None] | None = None
        self._write: Callable[[str], None] | None = None
        self.connected = False
        self.on_event = None
        self.on_disconnect = None
        self.tag = None
        self.sid = ""

    async def connect(self, url: str, auth: dict[str, Any], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            ws = await self._session.ws_connect(
                socketio_url(url), autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024
            )
            self._ws = ws
            try:
                opened = await ws.receive()
                if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
                    raise ConnectRefused("engineio", f"unexpected open packet {opened.data!r}")
                await ws.send_str("40" + orjson.dumps(auth).decode())
                while True:
                    reply = await ws.receive()
                    if reply.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectRefused(
                            "closed", f"socket closed during connect: {reply.type}"
                        )
                    if reply.data == "2":
                        await ws.send_str("3")
                        continue
                    break
                if reply.data.startswith("40"):
                    self.sid = orjson.loads(reply.data[2:] or "{}").get("sid", "")
                elif reply.data.startswith("44"):
                    body = orjson.loads(reply.data[2:] or "{}")
                    data = body.get("data") or {}
                    code = data.get("code") if isinstance(data, dict) else None
                    raise ConnectRefused(
                        str(code or body.get("message") or "refused"), str(body.get("message"))
                    )
                else:
                    raise ConnectRefused("protocol", f"unexpected reply {reply.data[:80]!r}")
            except BaseException:
                await ws.close()
                raise
        self._write = self._frame_writer(ws)
        self.connected = True
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    @staticmethod
    def _frame_writer(ws: aiohttp.ClientWebSocketResponse) -> Callable[[str], None]:
        """A synchronous text-frame writer: the transport buffers, nothing waits on drain."""
        writer = getattr(ws, "_writer", None)
        write_frame = getattr(writer, "_write_websocket_frame", None)
        if write_frame is not None and not getattr(writer, "compress", 0):

            def send(text: str) -> None:
                write_frame(text.encode(), aiohttp.WSMsgType.TEXT, 0)

            return send
        loop = asyncio.get_running_loop()  # pragma: no cover - other aiohttp versions
        tasks: set[asyncio.Task[None]] = set()

        def send_via_task(text: str) -> None:
            task = loop.create_task(ws.send_str(text))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return send_via_task

    def emit(self, event: str, data: Any, on_ack: AckHandler | None = None) -> bool:
        if not self.connected or self._write is None:
            return False
        if on_ack is None:
            frame = "42" + orjson.dumps([event, data]).decode()
        else:
            self._next_ack += 1
            ack_id = self._next_ack
            self._acks[ack_id] = on_ack
            frame = f"42{ack_id}" + orjson.dumps([event, data]).decode()
        try:
            self._write(frame)
        except Exception:
            self._lost()
            return False
        return True

    def pending_acks(self) -> int:
        return len(self._acks)

    def write_buffer(self) -> int:
        ws = self._ws
        if ws is None:
            return 0
        transport = getattr(getattr(ws, "_writer", None), "transport", None)
        return transport.get_write_buffer_size() if transport is not None else 0

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data: str = msg.data
                head = data[:2]
                if head == "42":
                    at = data.index("[", 2)
                    event, *args = orjson.loads(data[at:])
                    handler = self.on_event
                    if handler is not None:
                        handler(self, event, args[0] if args else None)
                elif head == "43":
                    at = data.index("[", 2)
                    callback = self._acks.pop(int(data[2:at]), None)
                    if callback is not None:
                        args = orjson.loads(data[at:])
                        callback(args[0] if args else None)
                elif data == "2":
                    if self._write is not None:
                        self._write("3")
                elif head == "41" or data == "1":
                    break
        except (aiohttp.ClientError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._lost()

    def _lost(self) -> None:
        if not self.connected:
            return
        self.connected = False
        self._acks.clear()
        if self.on_disconnect is not None:
            self.on_disconnect(self)

    async def close(self) -> None:
        was = self.connected
        self.on_disconnect = None
        self.connected = False
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                if was and self._write is not None:
                    self._write("41")
                await asyncio.wait_for(ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


class SioSocket(BaseSocket):
    """The same over python-socketio's ``AsyncClient`` (one aiohttp session per client)."""

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        import socketio

        self._client = socketio.AsyncClient(reconnection=False, http_session=session)
        self._pending = 0
        self.connected = False
        self.on_event = None
        self.on_disconnect = None
        self.tag = None
        self._tasks: set[asyncio.Task[Any]] = set()

        async def any_event(event: str, *args: Any) -> None:
            if self.on_event is not None:
                self.on_event(self, event, args[0] if args else None)

        async def disconnected(*_: Any) -> None:
            if self.connected:
                self.connected = False
                if self.on_disconnect is not None:
                    self.on_disconnect(self)

        self._client.on("*", any_event)
        self._client.on("disconnect", disconnected)

    async def connect(self, url: str, auth: dict[str, Any], timeout: float = 20) -> None:
        import socketio

        try:
            await self._client.connect(
                url, auth=auth, transports=["websocket"], wait_timeout=timeout
            )
        except socketio.exceptions.ConnectionError as exc:
            raise ConnectRefused("refused", str(exc)) from None
        self.connected = True

    def emit(self, event: str, data: Any, on_ack: AckHandler | None = None) -> bool:
        if not self.connected:
            return False
        callback = None
        if on_ack is not None:
            self._pending += 1

            def callback(*args: Any) -> None:
                self._pending -= 1
                on_ack(args[0] if args else None)

        task = asyncio.get_running_loop().create_task(
            self._client.emit(event, data, callback=callback)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def pending_acks(self) -> int:
        return self._pending

    async def close(self) -> None:
        self.on_disconnect = None
        self.connected = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.disconnect(), 5)


def make_socket(kind: str, session: aiohttp.ClientSession) -> BaseSocket:
    if kind == "raw":
        return RawSocket(session)
    if kind == "sio":
        return SioSocket(session)
    raise ValueError(f"unknown client kind {kind!r}")
