// The system under test, for real: the gateway, broadcast service and archival worker built by
// cargo, started as processes on free loopback ports against the machine's Redis, NATS and
// PostgreSQL, isolated by a fresh database, a Redis key prefix, a subject prefix and a stream
// of their own (all removed at the end), and Debian's Chromium driven by playwright-core.
// A stack started with `ownRedis` has a throwaway redis-server of its own instead, which a
// test may pause (SIGSTOP): the machine's shared Redis is never paused.

import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.E2E_BIN_DIR
  ? path.resolve(ROOT, process.env.E2E_BIN_DIR)
  : path.resolve(ROOT, process.env.CARGO_TARGET_DIR ?? "target", "debug");
const LOGS = path.join(ROOT, ".local", "e2e");
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const PG = { host: "127.0.0.1", port: "5432", user: "postgres" };
export const PASSWORD = "e2e password 2026";
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function psql(sql) {
  execFileSync("psql", ["-h", PG.host, "-p", PG.port, "-U", PG.user, "-d", "postgres", "-qc", sql], { stdio: "pipe" });
}

/** Waits until `check()` is truthy, polling; throws with `what` after `ms`. */
export async function waitFor(what, check, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** One service process; its log goes to .local/e2e/<name>.log. */
class Process {
  constructor(name, binary, env, args = []) {
    this.name = name;
    this.binary = binary;
    this.env = env;
    this.args = args;
    this.child = null;
  }

  start() {
    mkdirSync(LOGS, { recursive: true });
    const log = openSync(path.join(LOGS, `${this.name}.log`), "a");
    // A service's name is its binary in BIN; an absolute path is any other program.
    const file = path.isAbsolute(this.binary) ? this.binary : path.join(BIN, this.binary);
    this.child = spawn(file, this.args, {
      env: { PATH: process.env.PATH, LOG_FORMAT: "json", RUST_LOG: "warn", ...this.env },
      stdio: ["ignore", log, log],
    });
    this.failed = null;
    this.exited = new Promise((resolve) => {
      this.child.once("exit", resolve);
      this.child.once("error", (error) => {
        this.failed = error;
        resolve();
      });
    });
  }

  /** SIGTERM (graceful: sockets closed with 1001), then SIGKILL if it lingers. */
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A throwaway redis-server on a free port (no persistence), for a test that pauses Redis. */
class RedisServer {
  static async start() {
    const server = new RedisServer();
    server.port = await freePort();
    server.url = `redis://127.0.0.1:${server.port}`;
    const binary = execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
    server.proc = new Process(`redis-${server.port}`, binary, {},
      ["--port", String(server.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    server.proc.start();
    await waitFor("the throwaway redis-server", () => {
      if (server.proc.failed) throw server.proc.failed;
      return execFileSync("redis-cli", ["-u", server.url, "ping"], { encoding: "utf8" }).trim() === "PONG";
    });
    return server;
  }

  /** Freezes the server: calls to it hang until `resume` (the gateway's deadline answers 503). */
  pause() {
    this.proc.child.kill("SIGSTOP");
  }

  resume() {
    this.proc.child.kill("SIGCONT");
  }

  async stop() {
    this.resume();
    await this.proc.stop();
  }
}

export class Stack {
  /** `ownRedis`: a throwaway redis-server for this stack (`stack.redis`), not the shared one. */
  static async start({ ownRedis = false } = {}) {
    const stack = new Stack();
    try {
      if (ownRedis) stack.redis = await RedisServer.start();
      await stack.boot();
    } catch (error) {
      // Nothing of a half-started run is left behind: processes, database, keys, stream.
      await stack.stop();
      throw error;
    }
    return stack;
  }

  async boot() {
    const run = randomBytes(4).toString("hex");
    this.database = `e2e_${run}`;
    this.keyPrefix = `e2e-${run}:`;
    this.subjectPrefix = `e2e${run}`;
    this.stream = `E2E_${run.toUpperCase()}`;
    psql(`CREATE DATABASE ${this.database}`);
    const databaseUrl = `postgres://${PG.user}@${PG.host}:${PG.port}/${this.database}`;
    const [gatewayPort, broadcastPort, workerPort] = [await freePort(), await freePort(), await freePort()];
    this.gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    this.broadcastUrl = `http://127.0.0.1:${broadcastPort}`;
    const common = {
      REDIS_URL: this.redis?.url ?? REDIS_URL,
      NATS_URL,
      REDIS_KEY_PREFIX: this.keyPrefix,
      SUBJECT_PREFIX: this.subjectPrefix,
    };
    this.gatewayEnv = {
      ...common,
      LISTEN_ADDR: `127.0.0.1:${gatewayPort}`,
      DATABASE_URL: databaseUrl,
      ARCHIVE_STREAM: this.stream,
      WEB_APP_WS_URL: `ws://127.0.0.1:${broadcastPort}/ws`,
      // Debug binaries on a shared two-core machine: the default 80 ms deadline for a Redis call
      // turns a busy moment into a 503, which these tests are not about (one shows that the
      // app explains a 503 or 429 and retries the same attempt).
      REDIS_TIMEOUT_MS: "1000",
      DATABASE_TIMEOUT_MS: "5000",
      // The default burst (20) refilled slowly, so a burst spent by the 429 test stays spent
      // for a second whatever the machine's load; no other test comes near it.
      BID_RATE_PER_USER: "1",
      BID_BURST_PER_USER: "20",
    };
    this.gateway = new Process("api-gateway", "api-gateway", this.gatewayEnv);
    this.broadcast = new Process("broadcast-service", "broadcast-service", {
      ...common,
      LISTEN_ADDR: `127.0.0.1:${broadcastPort}`,
      JWKS_URL: `${this.gatewayUrl}/.well-known/jwks.json`,
    });
    this.worker = new Process("archival-worker", "archival-worker", {
      NATS_URL,
      SUBJECT_PREFIX: this.subjectPrefix,
      LISTEN_ADDR: `127.0.0.1:${workerPort}`,
      DATABASE_URL: databaseUrl,
      ARCHIVE_STREAM: this.stream,
      CONSUMER_NAME: `e2e-${run}`,
    });
    this.workerUrl = `http://127.0.0.1:${workerPort}`;
    this.gateway.start();
    await this.ready(this.gatewayUrl, this.gateway);
    this.worker.start();
    this.broadcast.start();
    await this.ready(this.workerUrl, this.worker);
    await this.ready(this.broadcastUrl, this.broadcast);
    // The accounts schema migrates in the background: registration answers 503 until then.
    await waitFor("the accounts database", async () => {
      const r = await fetch(`${this.gatewayUrl}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ login: "nobody", password: "x" }),
      });
      return r.status !== 503;
    });
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
    });
  }

  /** Waits for `/ready`; a process that could not start or exited fails at once. */
  async ready(base, proc) {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.failed) throw new Error(`${proc.name} did not start: ${proc.failed.message}`);
      if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited (see .local/e2e/${proc.name}.log)`);
      const ok = await fetch(`${base}/ready`).then((r) => r.ok, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${proc.name} did not become ready within 60 s (see .local/e2e/${proc.name}.log)`);
  }

  /** Stops the broadcast instance (its sockets get 1001) and starts it again on its port. */
  async restartBroadcast(whileDown = async () => {}) {
    await this.broadcast.stop();
    await whileDown();
    this.broadcast.start();
    await this.ready(this.broadcastUrl, this.broadcast);
  }

  async stop() {
    await this.browser?.close().catch(() => {});
    for (const proc of [this.broadcast, this.worker, this.gateway]) await proc?.stop();
    await this.redis?.stop();
    if (!this.database) return;
    try {
      psql(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
    } catch {
      // Best effort: a leftover test database is harmless.
    }
    if (!this.redis) await deleteRedisKeys(this.keyPrefix);
    await deleteStream(this.stream);
  }

  /** A JSON call to the gateway; resolves to {status, body}. */
  async api(pathname, { method = "GET", token, json, headers = {} } = {}) {
    const response = await fetch(`${this.gatewayUrl}${pathname}`, {
      method,
      headers: {
        ...(json === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    return { status: response.status, body };
  }

  /** Registers `username` (display name = username) and returns its tokens and account. */
  async register(username) {
    const reply = await this.untilAvailable(() => this.api("/api/v1/auth/register", {
      method: "POST",
      json: { username, display_name: username, password: PASSWORD },
    }));
    if (reply.status !== 201) throw new Error(`register ${username}: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  async login(username) {
    const reply = await this.untilAvailable(() =>
      this.api("/api/v1/auth/login", { method: "POST", json: { login: username, password: PASSWORD } }));
    if (reply.status !== 200) throw new Error(`login ${username}: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  /** A call retried while it answers 503, as a client would (a busy machine's slow query). */
  async untilAvailable(call) {
    let reply;
    for (let attempt = 0; attempt < 10; attempt += 1) {
      reply = await call();
      if (reply.status !== 503) return reply;
      await new Promise((r) => setTimeout(r, 300));
    }
    return reply;
  }

  /** Makes `username` an admin with the documented command, then signs it in again. */
  async admin(username) {
    await this.register(username);
    execFileSync(path.join(BIN, "api-gateway"), ["promote-admin", username], {
      env: { PATH: process.env.PATH, ...this.gatewayEnv, RUST_LOG: "warn" },
      stdio: "pipe",
    });
    return this.login(username);
  }

  /** An auction created through the API by `seller` (tokens), ending `minutes` from now. */
  async createItem(seller, fields = {}) {
    const end = new Date(Date.now() + (fields.minutes ?? 30) * 60_000).toISOString();
    const { minutes, ...rest } = fields;
    const reply = await this.api("/api/v1/items", {
      method: "POST",
      token: seller.access_token,
      json: { name: "Test item", starting_price: 10, min_increment: 1, end_time: end, ...rest },
    });
    return reply;
  }

  async item(id) {
    return (await this.api(`/api/v1/items/${id}`)).body;
  }

  /** A browser context signed in as `tokens` (the app's stored session, real tokens). */
  async signedInContext(tokens, { accessExpired = false, ...options } = {}) {
    const context = await this.browser.newContext(options);
    if (tokens) {
      const session = {
        access: tokens.access_token,
        // `accessExpired`: as a browser that slept past the access token's expiry finds it.
        accessExpiresAt: accessExpired ? Date.now() - 1000 : Date.now() + tokens.expires_in * 1000,
        refresh: tokens.refresh_token,
        user: { id: tokens.user.id, name: tokens.user.display_name, roles: tokens.user.roles },
      };
      await context.addInitScript((saved) => {
        if (!localStorage.getItem("auction.session")) localStorage.setItem("auction.session", saved);
      }, JSON.stringify(session));
    }
    return context;
  }

  appUrl(hash = "#/") {
    return `${this.gatewayUrl}/app/${hash}`;
  }
}

/** Every Redis key of the run (SCAN + DEL through redis-cli, which the stack script installs). */
async function deleteRedisKeys(prefix) {
  try {
    const keys = execFileSync("redis-cli", ["-u", REDIS_URL, "--scan", "--pattern", `${prefix}*`], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) {
      execFileSync("redis-cli", ["-u", REDIS_URL, "del", ...keys.slice(i, i + 500)], { stdio: "pipe" });
    }
  } catch {
    // Best effort, as above.
  }
}

/** Deletes the run's JetStream stream: one request on the NATS text protocol. */
function deleteStream(stream) {
  const { hostname, port } = new URL(NATS_URL.split(",")[0]);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port) || 4222, hostname);
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(3000, done);
    socket.on("error", done);
    let sent = false;
    socket.on("data", (chunk) => {
      const text = chunk.toString();
      if (!sent && text.startsWith("INFO")) {
        sent = true;
        socket.write(`CONNECT {"verbose":false}\r\nSUB e2e.reply 1\r\nPUB $JS.API.STREAM.DELETE.${stream} e2e.reply 0\r\n\r\n`);
      } else if (text.includes("MSG e2e.reply")) {
        done();
      }
    });
  });
}
