// Load client of bench/cluster_bench.py: fanout receivers or the publisher, driven over
// stdin/stdout by JSON lines (one per line, both ways).
//
//   node client.js recv --proto P --urls URL[,URL...] --count N [--room R]
//   node client.js pub  --proto P --url URL [--room R] [--size BYTES]
//
// --proto: "raw" (a minimal RFC 6455 client on Node's net module: no npm package, so the
// test suite can run it), "ws" (the `ws` package, the one socket.io-client uses under Node)
// or "sio" (socket.io-client, WebSocket transport only; receivers join room R through the
// handshake query; the publisher emits "pub" (R, data) and the server emits "m" to R).
// Receivers are spread over the URLs round-robin.
//
// Payloads: data "M" + seq (10 digits) + send time (16 digits, CLOCK_MONOTONIC ns, which
// is process.hrtime's clock and Python's time.monotonic_ns(): one clock for every process
// on the machine) padded with "x" to --size; sync messages start with "S".
//
// Receiver: prints {"event":"open"} once every connection is up, {"event":"synced"} once
// every receiver got a sync message, {"event":"complete"} once every receiver got the
// number of data messages set by {"cmd":"expect","n":K}; {"cmd":"window","start":ns,
// "end":ns} sets the measured window (deliveries that arrive in it are counted and their
// latency goes into a histogram of 1 % wide buckets); {"cmd":"report"} prints the report
// and exits.
// Publisher: {"cmd":"sync"} starts a sync message every 20 ms; {"cmd":"go","rate":R,
// "seconds":S} stops them and sends R data messages per second for S seconds, then prints
// {"event":"done",...}; {"cmd":"quit"} exits.
"use strict";

const net = require("net");
const crypto = require("crypto");
const readline = require("readline");

const LOG_BASE = Math.log(1.01);
const CONNECT_CONCURRENCY = 50;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function nowNs() {
  const t = process.hrtime();
  return t[0] * 1e9 + t[1];
}

function emit(obj, then) {
  process.stdout.write(JSON.stringify(obj) + "\n", then);
}

// -- a minimal WebSocket client (RFC 6455): text frames, pings answered, no extensions --

class RawSocket {
  constructor(url, handlers) {
    const u = new URL(url);
    this.handlers = handlers;
    this.buf = null;
    this.upgraded = false;
    this.sock = net.connect(Number(u.port), u.hostname);
    this.sock.setNoDelay(true);
    const key = crypto.randomBytes(16).toString("base64");
    this.sock.on("connect", () => {
      this.sock.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.sock.on("data", (chunk) => this.onData(chunk));
    this.sock.on("error", (err) => handlers.error(err));
    this.sock.on("close", () => handlers.close());
  }

  onData(chunk) {
    let buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.upgraded) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        this.buf = buf;
        return;
      }
      const status = buf.toString("latin1", 0, buf.indexOf("\r\n"));
      if (!status.startsWith("HTTP/1.1 101")) {
        this.handlers.error(new Error(`upgrade refused: ${status}`));
        this.sock.destroy();
        return;
      }
      this.upgraded = true;
      buf = buf.subarray(end + 4);
      this.handlers.open();
    }
    let off = 0;
    while (buf.length - off >= 2) {
      const b0 = buf[off];
      let len = buf[off + 1] & 127;
      let head = 2;
      if (len === 126) {
        if (buf.length - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - off < 10) break;
        len = Number(buf.readBigUInt64BE(off + 2));
        head = 10;
      }
      if (buf.length - off < head + len) break;
      const start = off + head;
      const opcode = b0 & 15;
      if (opcode === 1 || opcode === 2 || opcode === 0) {
        this.handlers.message(buf.toString("latin1", start, start + len));
      } else if (opcode === 9) {
        this.sendFrame(0xa, buf.subarray(start, start + len));
      } else if (opcode === 8) {
        this.sock.end();
      }
      off = start + len;
    }
    this.buf = off >= buf.length ? null : buf.subarray(off);
  }

  sendFrame(opcode, payload) {
    const len = payload.length;
    const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
    const frame = Buffer.allocUnsafe(head + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(len), 2);
    }
    const mask = crypto.randomBytes(4);
    mask.copy(frame, head - 4);
    for (let i = 0; i < len; i++) frame[head + i] = payload[i] ^ mask[i & 3];
    this.sock.write(frame);
  }

  send(text) {
    this.sendFrame(1, Buffer.from(text, "latin1"));
  }

  pending() {
    return this.sock.writableLength;
  }
}

// -- the three client kinds behind one interface: open/message/error/close, send --

function connect(proto, url, room, handlers) {
  if (proto === "raw") return new RawSocket(url, handlers);
  if (proto === "ws") {
    const WebSocket = require("ws");
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("open", () => handlers.open());
    ws.on("message", (data) => handlers.message(data.toString("latin1")));
    ws.on("error", (err) => handlers.error(err));
    ws.on("close", () => handlers.close());
    return { send: (text) => ws.send(text), pending: () => ws.bufferedAmount };
  }
  if (proto === "sio") {
    const { io } = require("socket.io-client");
    const socket = io(url, {
      transports: ["websocket"],
      query: room ? { room } : {},
      forceNew: true,
      reconnection: false,
      timeout: 20000,
    });
    socket.on("connect", () => handlers.open());
    socket.on("m", (data) => handlers.message(data));
    socket.on("connect_error", (err) => handlers.error(err));
    socket.on("disconnect", () => handlers.close());
    return {
      send: (text) => socket.emit("pub", room, text),
      pending: () => {
        const transport = socket.io.engine && socket.io.engine.transport;
        return transport && transport.ws ? transport.ws.bufferedAmount || 0 : 0;
      },
    };
  }
  throw new Error(`unknown --proto ${proto}`);
}

function commands(onCommand) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line.trim()) onCommand(JSON.parse(line));
  });
  rl.on("close", () => process.exit(0));
}

function fail(message) {
  emit({ event: "error", error: message }, () => process.exit(1));
}

// -- receivers --

function receivers() {
  const proto = option("--proto", "raw");
  const urls = option("--urls", "").split(",").filter(Boolean);
  const n = Number(option("--count", "1"));
  const room = option("--room", "");
  const count = new Int32Array(n);
  const last = new Float64Array(n);
  const synced = new Uint8Array(n);
  const hist = new Map();
  let opened = 0;
  let nSynced = 0;
  let complete = 0;
  let expect = 0;
  let outOfOrder = 0;
  let total = 0;
  let windowDeliveries = 0;
  let maxLatencyNs = 0;
  let winStart = Infinity;
  let winEnd = Infinity;
  let closedEarly = 0;
  let done = false;

  function onMessage(i, text) {
    if (text.charCodeAt(0) === 83) {
      // "S": sync
      if (!synced[i]) {
        synced[i] = 1;
        if (++nSynced === n) emit({ event: "synced" });
      }
      return;
    }
    const now = nowNs();
    const seq = Number(text.substring(1, 11));
    const sentAt = Number(text.substring(11, 27));
    if (seq <= last[i]) outOfOrder++;
    last[i] = seq;
    total++;
    if (++count[i] === expect && ++complete === n) emit({ event: "complete" });
    if (now >= winStart && now < winEnd) {
      windowDeliveries++;
      const latency = now - sentAt;
      if (latency > maxLatencyNs) maxLatencyNs = latency;
      const bucket = latency <= 1000 ? 0 : Math.floor(Math.log(latency / 1000) / LOG_BASE);
      hist.set(bucket, (hist.get(bucket) || 0) + 1);
    }
  }

  let next = 0;
  function openOne() {
    if (next >= n) return;
    const i = next++;
    const url = urls[i % urls.length];
    connect(proto, url, room, {
      open: () => {
        if (++opened === n) emit({ event: "open", n });
        openOne();
      },
      message: (text) => onMessage(i, text),
      error: (err) => {
        if (!done) fail(`receiver ${i} (${url}): ${err.message}`);
      },
      close: () => {
        if (!done) closedEarly++;
      },
    });
  }
  for (let k = 0; k < Math.min(CONNECT_CONCURRENCY, n); k++) openOne();

  commands((cmd) => {
    if (cmd.cmd === "window") {
      winStart = cmd.start;
      winEnd = cmd.end;
    } else if (cmd.cmd === "expect") {
      expect = cmd.n;
      complete = 0;
      for (let i = 0; i < n; i++) if (count[i] >= expect) complete++;
      if (complete === n) emit({ event: "complete" });
    } else if (cmd.cmd === "report") {
      done = true;
      let min = Infinity;
      let max = 0;
      for (let i = 0; i < n; i++) {
        if (count[i] < min) min = count[i];
        if (count[i] > max) max = count[i];
      }
      const cpu = process.cpuUsage();
      emit(
        {
          event: "report",
          receivers: n,
          total,
          window_deliveries: windowDeliveries,
          min_count: n ? min : 0,
          max_count: max,
          complete,
          out_of_order: outOfOrder,
          closed_early: closedEarly,
          max_latency_us: maxLatencyNs / 1000,
          hist: Object.fromEntries(hist),
          cpu_s: (cpu.user + cpu.system) / 1e6,
        },
        () => process.exit(0),
      );
    }
  });
}

// -- the publisher --

function publisher() {
  const proto = option("--proto", "raw");
  const url = option("--url", "");
  const room = option("--room", "");
  const size = Math.max(27, Number(option("--size", "32")));
  const pad = "x".repeat(size);
  const digits = (value, width) => String(Math.floor(value)).padStart(width, "0");
  let syncTimer = null;
  let client = null;

  client = connect(proto, url, room, {
    open: () => emit({ event: "open" }),
    message: () => {},
    error: (err) => fail(`publisher (${url}): ${err.message}`),
    close: () => {},
  });

  function message(kind, seq) {
    return (kind + digits(seq, 10) + digits(nowNs(), 16) + pad).substring(0, size);
  }

  commands((cmd) => {
    if (cmd.cmd === "sync") {
      let k = 0;
      syncTimer = setInterval(() => client.send(message("S", ++k)), 20);
    } else if (cmd.cmd === "go") {
      clearInterval(syncTimer);
      const rate = cmd.rate;
      const total = Math.round(rate * cmd.seconds);
      const start = nowNs();
      let sent = 0;
      let maxLagMs = 0;
      let maxPending = 0;
      const tick = () => {
        const now = nowNs();
        const due = Math.min(total, Math.floor(((now - start) / 1e9) * rate) + 1);
        if (due > sent) {
          const lag = (now - (start + ((sent) / rate) * 1e9)) / 1e6;
          if (lag > maxLagMs) maxLagMs = lag;
        }
        while (sent < due) client.send(message("M", ++sent));
        const pending = client.pending();
        if (pending > maxPending) maxPending = pending;
        if (sent >= total) {
          clearInterval(timer);
          emit({ event: "done", sent, max_lag_ms: maxLagMs, max_pending: maxPending });
        }
      };
      const timer = setInterval(tick, 1);
      tick();
    } else if (cmd.cmd === "quit") {
      process.exit(0);
    }
  });
}

const role = process.argv[2];
if (role === "recv") receivers();
else if (role === "pub") publisher();
else fail(`usage: node client.js recv|pub ...`);
