// Test support: build and run the Rust examples the JS tests talk to.
// Not a test file itself (node --test only picks up *.test.mjs here).
import { spawn, execFile } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root (the crate and package.json live there). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * `cargo build --example NAME` and return the binary's path. Fails loudly (with cargo's output)
 * when the example does not build or does not exist.
 */
export function buildExample(name) {
  return new Promise((resolve, reject) => {
    execFile('cargo', ['build', '--quiet', '--example', name], { cwd: REPO, maxBuffer: 64 << 20 }, (err, _out, stderr) => {
      if (err) return reject(new Error(`cargo build --example ${name} failed:\n${stderr}`));
      const target = process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target');
      resolve(path.join(target, 'debug', 'examples', name));
    });
  });
}

/**
 * Start the chat server on a free port: `target/debug/examples/chat --addr 127.0.0.1:0` (built
 * first), or the command in SEALCAST_CHAT_CMD (e.g. a server built elsewhere). Resolves once it
 * prints `listening on http://HOST:PORT`; `signingKey` is the v2 server signing key it printed
 * before that (for pinning), if any.
 * @returns {Promise<{httpUrl: string, wsUrl: string, signingKey?: string, stop: () => Promise<void>, signal: (s: string) => void, log: () => string}>}
 */
export async function startChatServer({ readyTimeout = 30_000 } = {}) {
  const custom = process.env.SEALCAST_CHAT_CMD?.trim().split(/\s+/);
  const [cmd, ...args] = custom ?? [await buildExample('chat')];
  const child = spawn(cmd, [...args, '--addr', '127.0.0.1:0'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_LOG: 'warn', ...process.env },
  });
  let log = '';
  let signingKey;
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const httpUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chat server not ready in ${readyTimeout} ms\n${log}`)), readyTimeout);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      log += line + '\n';
      const key = /signing key[^:]*: ([A-Za-z0-9+/=]{88})$/.exec(line);
      if (key) signingKey = key[1];
      const m = /listening on (http:\/\/[^\s/]+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exited.then((code) => reject(new Error(`chat server exited early (${code})\n${log}`)));
  });
  return {
    httpUrl,
    wsUrl: httpUrl.replace(/^http/, 'ws') + '/ws',
    signingKey,
    signal: (s) => child.kill(s),
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A line-oriented JSON request/response process (the `v1_roundtrip` example).
 * `call(obj)` writes one line and resolves with the next response line, parsed.
 */
export function lineProcess(bin) {
  const child = spawn(bin, [], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const waiting = [];
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.resolve(line));
  child.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`${bin} exited (${code})\n${stderr}`));
  });
  return {
    call(request) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve: (line) => resolve(JSON.parse(line)), reject });
        child.stdin.write(JSON.stringify(request) + '\n');
      });
    },
    async close() {
      child.stdin.end();
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    },
  };
}

/** Resolve when `predicate()` is true, polling; reject with `what` after `timeout` ms. */
export async function until(predicate, what, timeout = 10_000) {
  const end = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
