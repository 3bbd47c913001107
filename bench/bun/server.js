// Raw Bun pub/sub baseline for sealcast's benchmarks (bench/run.sh, examples/loadgen.rs).
//
// The least a Bun server can do for the same protocol: `authenticate` (token = user id) →
// `connected`; `join` → `ws.subscribe(room)` for every requested room; a Redis subscriber on
// `ws:room:*` turns each reference envelope into `server.publish(room,
// JSON.stringify({event, data}))`, Bun's native (uWebSockets) fan-out. No encryption, no
// heartbeat, no indexes: this is the ceiling the issue compares sealcast against.
//
// Bun's built-in RedisClient (1.4) has no callback form of PSUBSCRIBE, so the subscriber is
// ioredis.
//
//   bun bench/bun/server.js --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379
//
// Prints `listening on http://ADDR` once it accepts connections.

import Redis from "ioredis";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const listen = arg("listen", "127.0.0.1:0");
const redisUrl = arg("redis", null);
const split = listen.lastIndexOf(":");
const hostname = listen.slice(0, split);
const port = Number(listen.slice(split + 1));

const send = (ws, event, data) => ws.send(JSON.stringify({ event, data }));

const server = Bun.serve({
  hostname,
  port,
  fetch(req, server) {
    const { pathname } = new URL(req.url);
    if (pathname === "/ws" && server.upgrade(req, { data: { id: crypto.randomUUID(), user: null } })) {
      return undefined;
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    message(ws, raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch {
        send(ws, "error", { message: "Invalid message format" });
        return;
      }
      const data = msg?.data ?? {};
      switch (msg?.event) {
        case "authenticate": {
          if (ws.data.user) {
            send(ws, "error", { message: "Already authenticated" });
            return;
          }
          if (typeof data.token !== "string" || data.token === "") {
            send(ws, "error", { message: "Authentication failed" });
            ws.close(4003, "Authentication failed");
            return;
          }
          ws.data.user = data.token;
          send(ws, "connected", { id: ws.data.id, userId: data.token, time: new Date().toISOString() });
          return;
        }
        case "join":
        case "leave": {
          if (!ws.data.user) {
            send(ws, "error", { message: "Not authenticated" });
            return;
          }
          for (const room of Array.isArray(data.rooms) ? data.rooms : []) {
            if (typeof room !== "string" || room === "") continue;
            if (msg.event === "join") ws.subscribe(room);
            else ws.unsubscribe(room);
          }
          return;
        }
        default:
          return;
      }
    },
  },
});

if (redisUrl) {
  const sub = new Redis(redisUrl, { lazyConnect: true });
  await sub.connect();
  sub.on("pmessage", (_pattern, channel, message) => {
    let envelope;
    try {
      envelope = JSON.parse(message);
    } catch {
      return;
    }
    const room = envelope.target ?? channel.slice("ws:room:".length);
    server.publish(room, JSON.stringify({ event: envelope.event, data: envelope.data }));
  });
  await sub.psubscribe("ws:room:*");
}

console.log(`listening on http://${server.hostname}:${server.port}`);
