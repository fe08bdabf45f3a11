/**
 * Test harness shared by every integration test: a real Rampart server on an ephemeral port with
 * captured logs, real `ws` clients, and promise helpers that wait for events (never for time).
 */
import { Writable } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { createRampartServer, type RampartServer } from '../../src/server/rampart-server.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { signDevToken, type DevTokenClaims } from '../../src/auth/dev-token.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.RAMPART_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestServer {
  server: RampartServer;
  port: number;
  url: string;
  httpUrl: string;
  /** Every log line the server wrote, raw. */
  logs: string[];
  dir: string;
  close(): Promise<void>;
}

/** A port free on 127.0.0.1 now (for a server whose own origin must be known before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Starts a server with test defaults (temp SQLite, HS256 test secret, quiet logs captured). */
export async function startServer(overrides: RampartConfigInput = {}, opts: { nodeId?: string; keepDir?: string } = {}): Promise<TestServer> {
  const dir = opts.keepDir ?? mkdtempSync(join(tmpdir(), 'rampart-test-'));
  const config = parseConfig({
    port: 0,
    host: '127.0.0.1',
    storage: `sqlite:${join(dir, 'test.db')}`,
    dataDir: dir,
    logLevel: 'info',
    allowedOrigins: ['http://localhost:3000', 'https://*.example.com'],
    jwt: { secret: TEST_SECRET },
    ...overrides,
  });
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  const server = await createRampartServer({ config, logDestination: destination, demoPage: true, ...(opts.nodeId ? { nodeId: opts.nodeId } : {}) });
  const address = await server.listen();
  return {
    server,
    port: address.port,
    url: `ws://127.0.0.1:${address.port}/ws`,
    httpUrl: `http://127.0.0.1:${address.port}`,
    logs,
    dir,
    close: async () => {
      await server.close();
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const newUserId = (): string => randomUUID();

export function token(claims: Partial<DevTokenClaims> & { sub: string }, secret = TEST_SECRET): Promise<string> {
  return signDevToken(secret, { ttl: '1h', ...claims });
}

export interface Frame {
  type: string;
  [key: string]: unknown;
}

/** A `ws` client that records frames and its close, with awaitable helpers. */
export class TestClient {
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (err: Error) => void }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(frame)) return true;
        w.resolve(frame);
        return false;
      });
    });
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      this.closeCode = code;
      resolve({ code, reason: reason.toString() });
      // No frame can arrive any more: fail the waiters now, naming the close, instead of letting
      // the test run into its timeout with no clue.
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(new SocketClosed(code));
    }));
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new HttpRefusal(res.statusCode ?? 0)));
      ws.once('error', reject);
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves with the first frame (already received or future) matching `pred`. */
  next(pred: (f: Frame) => boolean = () => true, skipSeen = false): Promise<Frame> {
    if (!skipSeen) {
      const seen = this.frames.find(pred);
      if (seen) return Promise.resolve(seen);
    }
    const closeCode = this.closeCode;
    const wait = new Promise<Frame>((resolve, reject) => {
      if (closeCode === undefined) this.waiters.push({ pred, resolve, reject });
      else reject(new SocketClosed(closeCode));
    });
    // A wait nobody awaits any more (it lost a race with `closed`) must not be an unhandled
    // rejection; whoever awaits it still gets the error.
    wait.catch(() => {});
    return wait;
  }

  nextOfType(type: string): Promise<Frame> {
    return this.next((f) => f.type === type);
  }

  /** Waits for the `n`-th frame of `type` (1-based) counted over the whole session. */
  async nthOfType(type: string, n: number): Promise<Frame> {
    const count = (): Frame[] => this.frames.filter((f) => f.type === type);
    while (count().length < n) await this.next((f) => f.type === type, true);
    return count()[n - 1] as Frame;
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** The socket closed while a test was waiting for a frame. */
export class SocketClosed extends Error {
  constructor(readonly code: number) {
    super(`socket closed with code ${code} before the awaited frame arrived`);
  }
}

export class HttpRefusal extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

export function openClient(url: string, options: WebSocket.ClientOptions & { origin?: string } = {}): TestClient {
  return new TestClient(new WebSocket(url, options));
}

/** Opens a socket and authenticates as `sub` (a new user when omitted). */
export async function authedClient(url: string, sub = newUserId(), claims: Partial<DevTokenClaims> = {}, options: WebSocket.ClientOptions = {}): Promise<TestClient & { userId: string }> {
  const client = openClient(url, options) as TestClient & { userId: string };
  client.userId = sub;
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub, ...claims }) });
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  if (reply.type !== 'auth_success') throw new Error(`auth failed: ${String(reply.reason)}`);
  return client;
}

/** Status of a refused handshake (throws if the handshake succeeded). */
export async function handshakeStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  const client = openClient(url, options);
  try {
    await client.opened;
  } catch (err) {
    if (err instanceof HttpRefusal) return err.status;
    throw err;
  }
  client.terminate();
  throw new Error('handshake unexpectedly succeeded');
}

export async function closeAll(...clients: (TestClient | undefined)[]): Promise<void> {
  await Promise.all(clients.filter((c): c is TestClient => c !== undefined).map((c) => {
    c.terminate();
    return c.closed;
  }));
}

/** A Redis key prefix no other test (or concurrent test process) uses. */
export function uniqueRedisPrefix(tag = 't'): string {
  return `rampart-test:${tag}:${randomUUID().slice(0, 8)}:`;
}

/** Rejects if `p` does not settle within `ms` (a guard, not a wait). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}

/**
 * The largest chat_message the protocol allows, as `{content, attachments}` for the i-th one:
 * 4990 characters that each escape to 6 (`"` → `&quot;`), plus 10 attachments with 2000-char URLs
 * and escaped names — about 55 kB on the wire once delivered.
 */
export function maximalMessage(i: number): { content: string; attachments: { type: string; url: string; name: string }[] } {
  return { content: `${'"'.repeat(4990)}${i}`, attachments: MAXIMAL_ATTACHMENTS };
}
const MAXIMAL_ATTACHMENTS = Array.from({ length: 10 }, (_, k) => ({ type: 'file', url: `https://files.example/${k}/${'a'.repeat(2000)}`, name: '"'.repeat(255) }));

/** Polls `check` (sync or async) every `everyMs` until it is truthy; throws naming `what` after `timeoutMs`. */
export async function waitFor(check: () => unknown, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A TCP proxy the test controls: `stop()` drops every connection and the listener, `start()` listens again on the same port. */
export interface TcpProxy {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (when it fronts Redis). */
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /**
   * Black-holes the connections open now: they stay open but carry nothing either way (a path
   * that died silently: no FIN, no RST). New connections are forwarded as usual. With `only`,
   * just the connections whose first bytes from the client contain it (e.g. a Redis client's
   * `CLIENT SETNAME`, which ioredis sends first).
   */
  freeze(only?: string): void;
  /** Stops for good. */
  close(): Promise<void>;
}

/** A cuttable proxy in front of the Redis at `redisUrl`. */
export function startRedisProxy(redisUrl = REDIS_URL): Promise<TcpProxy> {
  const target = new URL(redisUrl);
  return startTcpProxy(target.hostname, Number(target.port || 6379));
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const net = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const pairs = new Set<[import('node:net').Socket, import('node:net').Socket]>();
  /** The first bytes each client sent, for `freeze(only)`. */
  const opening = new WeakMap<import('node:net').Socket, string>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, targetHost);
    sockets.add(inbound).add(outbound);
    const pair: [import('node:net').Socket, import('node:net').Socket] = [inbound, outbound];
    pairs.add(pair);
    inbound.once('data', (chunk: Buffer) => opening.set(inbound, chunk.toString('latin1', 0, 512)));
    inbound.once('close', () => pairs.delete(pair));
    for (const s of [inbound, outbound]) {
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  let listening = false;
  const listen = (p: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        listening = true;
        resolve((server.address() as import('node:net').AddressInfo).port);
      });
    });
  const port = await listen(0);
  const stop = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise((r) => server.close(r));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start: async () => {
      if (!listening) await listen(port);
    },
    freeze: (only?: string) => {
      for (const pair of pairs) {
        const [inbound, outbound] = pair;
        if (only !== undefined && !(opening.get(inbound) ?? '').includes(only)) continue;
        pairs.delete(pair);
        inbound.unpipe(outbound);
        outbound.unpipe(inbound);
        // Read nothing more: what either side writes piles up in the kernel, as on a dead path.
        inbound.pause();
        outbound.pause();
      }
    },
    close: stop,
  };
}

/** Deletes every key under `prefix` (what Redis restarted empty, or a FLUSHDB, leaves of a test's namespace). */
export async function deleteRedisPrefix(redis: import('ioredis').Redis, prefix: string): Promise<void> {
  for await (const batch of redis.scanStream({ match: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, count: 1000 }) as AsyncIterable<string[]>) {
    if (batch.length > 0) await redis.del(...batch);
  }
}

/** Resolves once the server's /readyz answers 200. */
export function waitReadyz(httpUrl: string, timeoutMs: number): Promise<void> {
  return waitFor(async () => {
    const r = await fetch(`${httpUrl}/readyz`);
    await r.body?.cancel();
    return r.status === 200;
  }, timeoutMs, '/readyz 200');
}

/** Deletes every key under `prefix` (a test's own namespace) and closes the connection. */
export async function dropRedisPrefix(redis: import('ioredis').Redis, prefix: string): Promise<void> {
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await deleteRedisPrefix(redis, prefix);
  await redis.quit();
}
