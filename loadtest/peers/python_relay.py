"""A minimal python-socketio relay, the Python yardstick ``python -m loadtest`` compares with.

On connect with ``auth: {userId}`` the socket joins the room ``userId``. ``message:send
{id, to, ciphertext, nonce}`` is emitted as ``message:new`` to the room ``to`` and acked with
``{ok: true, id, ts}``. Nothing stored, nothing checked: python-socketio + aiohttp + uvloop +
orjson with ``gc.freeze()`` after start-up, i.e. the same stack as the hub without its work.

    python loadtest/peers/python_relay.py --port 9200 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import time
from typing import Any

import orjson
import socketio
import uvloop
from aiohttp import web


class OrjsonForSocketIO:
    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(raw: str | bytes, **_: Any) -> Any:
        return orjson.loads(raw)


def build_app() -> web.Application:
    app = web.Application()
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        json=OrjsonForSocketIO,
        cors_allowed_origins=[],
        ping_interval=25,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    users: dict[str, str] = {}

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        user_id = auth.get("userId") if isinstance(auth, dict) else None
        if not isinstance(user_id, str) or not user_id:
            return False
        users[sid] = user_id
        await sio.enter_room(sid, user_id)
        return True

    async def disconnect(sid: str, reason: Any = None) -> None:
        users.pop(sid, None)

    async def message_send(sid: str, body: Any = None) -> dict[str, Any]:
        ts = int(time.time() * 1000)
        if not isinstance(body, dict) or not isinstance(body.get("to"), str):
            return {"ok": False, "error": {"code": "invalid_payload"}}
        await sio.emit(
            "message:new",
            {
                "id": body.get("id"),
                "from": users.get(sid),
                "to": body["to"],
                "ciphertext": body.get("ciphertext"),
                "nonce": body.get("nonce"),
                "ts": ts,
            },
            room=body["to"],
        )
        return {"ok": True, "id": body.get("id"), "ts": ts}

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("message:send", message_send)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(build_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=2048)
    await site.start()
    gc.collect()
    gc.freeze()
    print(f"python relay listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="minimal python-socketio relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
