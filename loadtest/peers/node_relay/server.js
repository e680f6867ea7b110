// A minimal socket.io 4 relay, the yardstick python -m loadtest compares the hub with.
//
// On connect with auth {userId} the socket joins the room userId. `message:send {id, to,
// ciphertext, nonce}` is emitted as `message:new` to the room `to` and acked with
// {ok: true, id, ts}. Nothing is stored, nothing is checked: it is as fast as socket.io gets.
//
//   node server.js --port 9100 [--host 127.0.0.1]
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = arg("host", "127.0.0.1");
const port = Number(arg("port", "9100"));

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(server, {
  transports: ["websocket"],
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
});

io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  const userId = typeof auth.userId === "string" ? auth.userId : null;
  if (!userId) {
    socket.disconnect(true);
    return;
  }
  socket.join(userId);
  socket.on("message:send", (body, ack) => {
    const ts = Date.now();
    if (!body || typeof body.to !== "string") {
      if (typeof ack === "function") ack({ ok: false, error: { code: "invalid_payload" } });
      return;
    }
    io.to(body.to).emit("message:new", {
      id: body.id,
      from: userId,
      to: body.to,
      ciphertext: body.ciphertext,
      nonce: body.nonce,
      ts,
    });
    if (typeof ack === "function") ack({ ok: true, id: body.id, ts });
  });
});

server.listen(port, host, () => {
  console.log(`node relay listening on http://${host}:${port}`);
});

function stop() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
