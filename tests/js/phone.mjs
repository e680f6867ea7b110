// A phone, as the mobile app is one: the official socket.io-client v4 and tweetnacl 1.0.3.
//
// Driven by tests/test_js_interop.py. The job is one JSON object, from argv[2] or stdin:
//
//   {
//     "url": "http://127.0.0.1:PORT",
//     "token": "<access JWT>" | null,      // null or absent: connect without a token
//     "device": "js-phone",
//     "secretKey": "<base64 NaCl secret key, 32 bytes>",
//     "peers": {"<userId>": "<base64 NaCl public key>"},
//     "transports": ["websocket"],         // or ["polling", "websocket"]
//     "expectConnectError": false,         // true: a refused connect is the success
//     "deadlineMs": 15000,                 // the whole run, connect included
//     "steps": [
//       {"do": "send", "to": "<userId>", "text": "...", "id": "<uuid, optional>"},
//       {"do": "burst", "to": "<userId>", "count": 200, "prefix": "take"},  // all at once
//       {"do": "edit", "to": "<userId>", "replaces": "<messageId>", "text": "...", "id": "<uuid, optional>"},
//       {"do": "delete", "id": "<messageId>"},
//       {"do": "sendAttachment", "to": "<userId>", "size": 50000, "mime": "audio/mp4", "id": "<uuid>"},
//         // a file encrypted with a fresh secretbox key, reserved (POST /api/attachments),
//         // uploaded with the returned method, URL and headers, and sent: its key, sha256,
//         // mime and size inside the message's box, its id in "attachments"
//       {"do": "receive", "count": 1, "timeoutMs": 5000},
//       {"do": "receiveDeleted", "count": 1, "timeoutMs": 5000},
//       {"do": "sync", "after": 0, "limit": 100},
//       {"do": "awaitTransport", "name": "websocket", "timeoutMs": 5000},
//       {"do": "awaitEnd", "event": "session:revoked", "timeoutMs": 5000}
//     ]
//   }
//
// It writes one JSON object per line to stdout, each with an "event" field: "start",
// "connected" (with the transport the session opened on and the one it uses now),
// "session:revoked" / "session:replaced" (with the payload), "ended" (awaitEnd: that event
// came and then the hub disconnected the socket),
// "connect_error", "ack", "message:new", "sync", "transport", "disconnect", "attachment",
// "done" (exit 0) or "error" (exit 1) or "timeout" (exit 2).

import { createHash, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { TextDecoder, TextEncoder } from "node:util";

import { io } from "socket.io-client";
import nacl from "tweetnacl";

const require = createRequire(import.meta.url);
const ACK_TIMEOUT_MS = 5000;

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

let finished = false;
let socket = null;
// Bounded from the first moment, even if the job never arrives on stdin.
let deadline = setTimeout(() => finish(2, { event: "timeout", afterMs: 15000 }), 15000);

function finish(code, line) {
  if (finished) return;
  finished = true;
  if (socket) socket.close();
  process.stdout.write(`${JSON.stringify(line)}\n`, () => process.exit(code));
  // If stdout is gone, leave anyway.
  setTimeout(() => process.exit(code), 1000).unref();
}

function fail(error) {
  finish(1, { event: "error", error: String(error?.stack ?? error) });
}

const fromB64 = (text) => new Uint8Array(Buffer.from(text, "base64"));
const toB64 = (bytes) => Buffer.from(bytes).toString("base64");
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

async function readJob() {
  if (process.argv[2]) return JSON.parse(process.argv[2]);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Events arrive whenever the hub sends them; steps take them in order. */
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  next(ms, what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return withTimeout(
      new Promise((resolve) => this.waiters.push(resolve)),
      ms,
      what,
    );
  }
}

function main(job) {
  const secretKey = fromB64(job.secretKey);
  if (secretKey.length !== nacl.box.secretKeyLength) throw new Error("secretKey must be 32 bytes");
  const peers = Object.fromEntries(
    Object.entries(job.peers ?? {}).map(([user, key]) => [user, fromB64(key)]),
  );

  function peerKey(userId) {
    const key = peers[userId];
    if (!key) throw new Error(`no public key for peer ${userId}`);
    return key;
  }

  function decrypt(message) {
    const plain = nacl.box.open(
      fromB64(message.ciphertext),
      fromB64(message.nonce),
      peerKey(message.peer),
      secretKey,
    );
    if (plain === null) throw new Error(`message ${message.id} does not open with peer ${message.peer}`);
    return strictUtf8.decode(plain);
  }

  if (job.deadlineMs !== undefined) {
    clearTimeout(deadline);
    deadline = setTimeout(() => finish(2, { event: "timeout", afterMs: job.deadlineMs }), job.deadlineMs);
  }

  emit({
    event: "start",
    node: process.version,
    socketIoClient: require("socket.io-client/package.json").version,
    tweetnacl: require("tweetnacl/package.json").version,
  });

  const auth = { device: job.device };
  if (job.token !== undefined && job.token !== null) auth.token = job.token;
  socket = io(job.url, {
    auth,
    transports: job.transports ?? ["websocket"],
    reconnection: false,
    timeout: 5000,
    forceNew: true,
  });

  // The Engine.IO session opens on the first transport; it may upgrade before, or after, the
  // Socket.IO "connect" (the hub answers the CONNECT only once presence is recorded).
  let openedOn = null;
  socket.io.on("open", () => {
    openedOn = socket.io.engine.transport.name;
    emit({ event: "transport", name: openedOn, opened: true });
    socket.io.engine.on("upgrade", (transport) =>
      emit({ event: "transport", name: transport.name, upgraded: true }),
    );
  });

  const inbox = new Inbox();
  socket.on("message:new", (message) => inbox.push(message));
  const deletions = new Inbox();
  socket.on("message:deleted", (deleted) => deletions.push(deleted));

  // Sync items with no ciphertext (a deleted message, a tombstone) have nothing to open.
  const openItem = (message) => (message.ciphertext === undefined ? null : decrypt(message));

  // The hub ends a session with one of these, then disconnects (awaitEnd expects it).
  const endings = new Inbox();
  let disconnectExpected = null;
  for (const name of ["session:revoked", "session:replaced"]) {
    socket.on(name, (payload) => {
      emit({ event: name, payload });
      endings.push({ name, payload });
    });
  }

  socket.on("disconnect", (reason) => {
    if (finished) return;
    emit({ event: "disconnect", reason });
    if (disconnectExpected) disconnectExpected(reason);
    else fail(new Error(`disconnected before the job was done: ${reason}`));
  });

  socket.on("connect_error", (err) => {
    const line = { event: "connect_error", message: err.message, data: err.data ?? null };
    if (job.expectConnectError) finish(0, line);
    else finish(1, line);
  });

  socket.on("connect", () => {
    emit({
      event: "connected",
      id: socket.id,
      openedOn,
      transport: socket.io.engine.transport.name,
    });
    if (job.expectConnectError) {
      finish(1, { event: "error", error: "connected, but a connect_error was expected" });
      return;
    }
    runSteps(job.steps ?? []).then(
      () => finish(0, { event: "done" }),
      (err) => fail(err),
    );
  });

  async function runSteps(steps) {
    for (const step of steps) {
      if (step.do === "send") {
        const nonce = nacl.randomBytes(nacl.box.nonceLength);
        const box = nacl.box(utf8.encode(step.text), nonce, peerKey(step.to), secretKey);
        const id = step.id ?? randomUUID();
        const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:send", {
          id,
          to: step.to,
          ciphertext: toB64(box),
          nonce: toB64(nonce),
        });
        emit({ event: "ack", do: "send", id, ack });
        if (!ack?.ok) throw new Error(`message:send refused: ${JSON.stringify(ack)}`);
      } else if (step.do === "burst") {
        // An outbox flushing: every send leaves before the first ack comes back.
        const ids = [];
        const pending = [];
        for (let i = 0; i < step.count; i += 1) {
          const nonce = nacl.randomBytes(nacl.box.nonceLength);
          const text = `${step.prefix ?? "burst"} ${i}`;
          const box = nacl.box(utf8.encode(text), nonce, peerKey(step.to), secretKey);
          const id = randomUUID();
          ids.push(id);
          pending.push(
            socket.timeout(step.timeoutMs ?? 10000).emitWithAck("message:send", {
              id,
              to: step.to,
              ciphertext: toB64(box),
              nonce: toB64(nonce),
            }),
          );
        }
        const acks = await Promise.all(pending);
        emit({ event: "burst", ids, acks });
        const refused = acks.filter((ack) => !ack?.ok);
        if (refused.length) throw new Error(`message:send refused: ${JSON.stringify(refused[0])}`);
      } else if (step.do === "edit") {
        const nonce = nacl.randomBytes(nacl.box.nonceLength);
        const box = nacl.box(utf8.encode(step.text), nonce, peerKey(step.to), secretKey);
        const id = step.id ?? randomUUID();
        const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:edit", {
          id,
          replaces: step.replaces,
          ciphertext: toB64(box),
          nonce: toB64(nonce),
        });
        emit({ event: "ack", do: "edit", id, ack });
        if (!ack?.ok) throw new Error(`message:edit refused: ${JSON.stringify(ack)}`);
      } else if (step.do === "delete") {
        const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:delete", {
          id: step.id,
        });
        emit({ event: "ack", do: "delete", id: step.id, ack });
        if (!ack?.ok) throw new Error(`message:delete refused: ${JSON.stringify(ack)}`);
      } else if (step.do === "sendAttachment") {
        // The app's way: secretbox with a fresh key, nonce first (as PyNaCl's SecretBox).
        const plain = nacl.randomBytes(step.size);
        const fileKey = nacl.randomBytes(nacl.secretbox.keyLength);
        const fileNonce = nacl.randomBytes(nacl.secretbox.nonceLength);
        const sealed = nacl.secretbox(plain, fileNonce, fileKey);
        const encrypted = new Uint8Array(fileNonce.length + sealed.length);
        encrypted.set(fileNonce);
        encrypted.set(sealed, fileNonce.length);
        const reserved = await fetch(`${job.url}/api/attachments`, {
          method: "POST",
          headers: { Authorization: `Bearer ${job.token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ size: encrypted.length, conversationId: step.to }),
        });
        const slot = await reserved.json();
        if (reserved.status !== 201) throw new Error(`reserve refused: ${JSON.stringify(slot)}`);
        const uploaded = await fetch(slot.uploadUrl, {
          method: slot.method,
          headers: slot.headers,
          body: encrypted,
        });
        if (!uploaded.ok) throw new Error(`upload refused: ${uploaded.status} ${await uploaded.text()}`);
        const described = JSON.stringify({
          attachmentId: slot.id,
          key: toB64(fileKey),
          sha256: createHash("sha256").update(encrypted).digest("hex"),
          mime: step.mime ?? "application/octet-stream",
          size: encrypted.length,
        });
        const nonce = nacl.randomBytes(nacl.box.nonceLength);
        const box = nacl.box(utf8.encode(described), nonce, peerKey(step.to), secretKey);
        const id = step.id ?? randomUUID();
        const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:send", {
          id,
          to: step.to,
          ciphertext: toB64(box),
          nonce: toB64(nonce),
          attachments: [slot.id],
        });
        emit({ event: "attachment", id, attachmentId: slot.id, plaintext: toB64(plain), ack });
        if (!ack?.ok) throw new Error(`message:send refused: ${JSON.stringify(ack)}`);
      } else if (step.do === "receiveDeleted") {
        for (let i = 0; i < (step.count ?? 1); i += 1) {
          const deleted = await deletions.next(step.timeoutMs ?? 5000, "message:deleted");
          emit({ event: "message:deleted", deleted });
        }
      } else if (step.do === "receive") {
        for (let i = 0; i < (step.count ?? 1); i += 1) {
          const message = await inbox.next(step.timeoutMs ?? 5000, "message:new");
          emit({ event: "message:new", message, plaintext: decrypt(message) });
        }
      } else if (step.do === "sync") {
        const request = { after: step.after ?? 0 };
        if (step.limit !== undefined) request.limit = step.limit;
        const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:sync", request);
        if (!ack?.ok) {
          emit({ event: "sync", request, ack });
          throw new Error(`message:sync refused: ${JSON.stringify(ack)}`);
        }
        emit({ event: "sync", request, ack, plaintexts: ack.messages.map(openItem) });
      } else if (step.do === "awaitTransport") {
        const engine = socket.io.engine;
        if (engine.transport.name !== step.name) {
          await withTimeout(
            new Promise((resolve) => engine.once("upgrade", resolve)),
            step.timeoutMs ?? 5000,
            `upgrade to ${step.name}`,
          );
        }
        if (engine.transport.name !== step.name) {
          throw new Error(`transport is ${engine.transport.name}, not ${step.name}`);
        }
        emit({ event: "transport", name: engine.transport.name });
      } else if (step.do === "awaitEnd") {
        const gone = new Promise((resolve) => {
          disconnectExpected = resolve;
        });
        const ms = step.timeoutMs ?? 5000;
        const ending = await endings.next(ms, step.event);
        if (ending.name !== step.event) throw new Error(`got ${ending.name}, not ${step.event}`);
        const reason = await withTimeout(gone, ms, "the disconnect after it");
        emit({ event: "ended", name: ending.name, payload: ending.payload, reason });
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
  }
}

readJob().then(main).catch(fail);
