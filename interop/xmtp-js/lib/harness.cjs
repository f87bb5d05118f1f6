// Shared helpers for the interop tests: an xmtp-node on free ports with a temporary database,
// xmtp-js clients with random wallets, and the `xmtp` CLI run as a child process.
//
// Binaries: $XMTP_NODE_BIN and $XMTP_CLI_BIN, else target/debug/{xmtp-node,xmtp} of this
// repository (dev/test.d/30-xmtp-js builds them). $XMTP_INTEROP_NODE_ARGS adds flags to every node.
"use strict";

const { spawn, execFile } = require("node:child_process");
const { mkdtempSync, rmSync, existsSync } = require("node:fs");
const { tmpdir } = require("node:os");
const path = require("node:path");
const { randomBytes } = require("node:crypto");
const { createInterface } = require("node:readline");
const { Client } = require("@xmtp/xmtp-js");
const { privateKeyToAccount } = require("viem/accounts");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const NODE_BIN = process.env.XMTP_NODE_BIN || path.join(ROOT, "target", "debug", "xmtp-node");
const CLI_BIN = process.env.XMTP_CLI_BIN || path.join(ROOT, "target", "debug", "xmtp");

/** A fresh temporary directory, removed by `cleanup`. */
function tempDir(prefix = "xmtp-js-interop-") {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Starts xmtp-node on port 0 with a SQLite database in a temp dir. Resolves once it printed its
 * "xmtp-node listening:" line: { grpcUrl, httpUrl, stop(), log() }.
 */
async function startNode({ extraArgs = [] } = {}) {
  if (!existsSync(NODE_BIN)) {
    throw new Error(`${NODE_BIN} is missing: cargo build -p xmtp_node --bin xmtp-node`);
  }
  const dir = tempDir("xmtp-js-node-");
  const child = spawn(
    NODE_BIN,
    [
      "--grpc-port", "0",
      "--http-port", "0",
      "--host", "127.0.0.1",
      "--db", path.join(dir, "node.db3"),
      "--shutdown-grace-secs", "1",
      ...extraArgs,
      // Extra flags for every node of a run, e.g. XMTP_INTEROP_NODE_ARGS=--require-auth.
      ...(process.env.XMTP_INTEROP_NODE_ARGS || "").split(/\s+/).filter(Boolean),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" } },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const ports = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`xmtp-node did not start in 20 s:\n${stderr}`)), 20_000);
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /xmtp-node listening: grpc=(\S+) http=(\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ grpc: m[1], http: m[2] });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`xmtp-node exited (${code}) before listening:\n${stderr}`));
    });
  });
  return {
    grpcUrl: `http://${ports.grpc}`,
    httpUrl: `http://${ports.http}`,
    log: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A random wallet: { key (64 hex, no 0x), address, signer (what xmtp-js's Client.create takes) }. */
function randomWallet() {
  const key = randomBytes(32).toString("hex");
  const account = privateKeyToAccount(`0x${key}`);
  return {
    key,
    address: account.address,
    signer: {
      getAddress: async () => account.address,
      signMessage: async (message) => account.signMessage({ message }),
    },
  };
}

/** Client options for our node's gateway; conversations kept in memory only. */
function clientOptions(node, extra = {}) {
  return {
    env: "local",
    apiUrl: node.httpUrl,
    persistConversations: false,
    ...extra,
  };
}

/** An xmtp-js client for `wallet` (a `randomWallet()`), through `node`'s gateway. */
async function jsClient(node, wallet, extra = {}) {
  return Client.create(wallet.signer, clientOptions(node, extra));
}

/** The V2 identity public key of an xmtp-js client, as 130 hex digits (uncompressed secp256k1). */
function jsIdentityKeyHex(client) {
  return Buffer.from(client.publicKeyBundle.identityKey.secp256k1Uncompressed.bytes).toString("hex");
}

/**
 * A user of our CLI: its own wallet, database key and database in a temp dir.
 * `run(args)` resolves with the parsed JSON lines of one `xmtp --json` invocation (and rejects
 * with its stderr when it fails); `stream()` starts `xmtp --json stream`.
 */
function cliUser(node, wallet = randomWallet()) {
  if (!existsSync(CLI_BIN)) {
    throw new Error(`${CLI_BIN} is missing: cargo build -p xmtp_cli --bin xmtp`);
  }
  const dir = tempDir("xmtp-js-cli-");
  const env = {
    ...process.env,
    XMTP_WALLET_KEY: wallet.key,
    XMTP_DB_KEY: randomBytes(32).toString("hex"),
    RUST_LOG: "off",
  };
  delete env.XMTP_NODE;
  delete env.XMTP_DB;
  const globalArgs = ["--node", node.grpcUrl, "--db", path.join(dir, "x.db3"), "--json"];
  const children = new Set();

  const run = (args, { timeoutMs = 30_000 } = {}) =>
    new Promise((resolve, reject) => {
      const child = execFile(
        CLI_BIN,
        [...globalArgs, ...args],
        { env, timeout: timeoutMs, maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          if (err) {
            reject(new Error(`xmtp ${args.join(" ")} failed (${err.code ?? err.signal}): ${stderr}${stdout}`));
            return;
          }
          try {
            resolve(parseLines(stdout));
          } catch (e) {
            reject(new Error(`xmtp ${args.join(" ")}: ${e.message}`));
          }
        },
      );
      children.add(child);
      child.on("exit", () => children.delete(child));
    });

  /** `xmtp --json stream`: resolves once it printed {"type":"listening"}; `next(pred)` waits for a line. */
  const stream = async () => {
    const child = spawn(CLI_BIN, [...globalArgs, "stream"], { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    child.on("exit", () => children.delete(child));
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const seen = [];
    const waiters = [];
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      let value;
      try {
        value = JSON.parse(line);
      } catch {
        return;
      }
      seen.push(value);
      for (const w of [...waiters]) {
        if (w.pred(value)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(value);
        }
      }
    });
    const next = (pred, timeoutMs = 30_000) => {
      const found = seen.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          if (waiters.includes(w)) {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`xmtp stream: no matching line in ${timeoutMs} ms; got ${JSON.stringify(seen)}; stderr: ${stderr}`));
          }
        }, timeoutMs);
        const w = {
          pred,
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value);
          },
        };
        waiters.push(w);
      });
    };
    await next((v) => v.type === "listening");
    return {
      next,
      seen,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const done = new Promise((r) => child.on("exit", r));
          child.kill("SIGTERM");
          await done;
        }
      },
    };
  };

  return {
    wallet,
    address: wallet.address,
    run,
    stream,
    async cleanup() {
      for (const child of children) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function parseLines(stdout) {
  return stdout
    .split("\n")
    .filter((l) => l.trim().length)
    .map((l) => JSON.parse(l));
}

/** Collects the next `n` items of an async iterator, failing after `timeoutMs`. */
async function take(iterator, n, timeoutMs = 20_000) {
  const out = [];
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`stream: got ${out.length} of ${n} items in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    while (out.length < n) {
      const { value, done } = await Promise.race([iterator.next(), timeout]);
      if (done) break;
      out.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
async function eventually(fn, timeoutMs = 10_000, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last || Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

module.exports = {
  ROOT,
  NODE_BIN,
  CLI_BIN,
  startNode,
  randomWallet,
  clientOptions,
  jsClient,
  jsIdentityKeyHex,
  cliUser,
  take,
  eventually,
  tempDir,
};

/** The node's live subscription count, from its /metrics gauge. */
async function subscriberCount(node) {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const m = /^xmtp_node_subscribers (\d+)$/m.exec(text);
  if (!m) throw new Error(`no xmtp_node_subscribers in /metrics:\n${text}`);
  return Number(m[1]);
}

/** Waits until the node counts at least `n` live subscriptions (so a stream is really open). */
async function waitForSubscribers(node, n, timeoutMs = 10_000) {
  const ok = await eventually(async () => (await subscriberCount(node)) >= n, timeoutMs, 50);
  if (!ok) throw new Error(`the node has ${await subscriberCount(node)} subscriptions, expected ${n}`);
}

module.exports.subscriberCount = subscriberCount;
module.exports.waitForSubscribers = waitForSubscribers;
