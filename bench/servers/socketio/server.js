// Socket.IO node of bench/cluster_bench.py: the contender of pyswoole's topics + cluster.
//
//   node server.js --port P --redis redis://127.0.0.1:6379 [--node ID]
//
// A client whose handshake query has room=R joins room R on connection; a "pub" event
// (room, data) from any client is sent to the room on every node: io.to(room).emit("m",
// data), spanning the nodes through @socket.io/redis-adapter (its default adapter: one
// PUBLISH per broadcast, every node pattern-subscribed). WebSocket transport only (the
// load client never polls), no per-message deflate. Prints one line with the port once
// the adapter's Redis connections are up.
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

async function main() {
  const port = Number(arg("--port", "0"));
  const redisUrl = arg("--redis", "redis://127.0.0.1:6379");
  const node = arg("--node", `n${process.pid}`);
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) client.on("error", (err) => console.error("redis:", err.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
    maxHttpBufferSize: 1e6,
  });
  io.adapter(createAdapter(pub, sub));

  io.on("connection", (socket) => {
    const room = socket.handshake.query.room;
    if (typeof room === "string" && room) socket.join(room);
    socket.on("pub", (target, data) => {
      io.to(String(target)).emit("m", data);
    });
  });

  httpServer.listen(port, "127.0.0.1", () => {
    process.stdout.write(`socketio node ${node} on port ${httpServer.address().port}\n`);
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
