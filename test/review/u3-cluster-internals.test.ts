/**
 * u3 probe: two nodes on Redis; after churn every per-user/per-session structure of each node
 * (Redis bus users/channels/confirming, presence maps and #unsure, registry mirror, directory
 * pending removals) returns to its baseline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startServer, authedClient, openClient, newUserId, token, waitFor, uniqueRedisPrefix, dropRedisPrefix, REDIS_URL, type TestClient, type TestServer } from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';
// ── introspection through the inspector (closure variables and #private fields) ──
import { Session as InspectorSession } from 'node:inspector';
class Peek {
  readonly s = new InspectorSession();
  constructor() { this.s.connect(); }
  post<T>(method: string, params: object): Promise<T> {
    return new Promise((resolve, reject) => this.s.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))));
  }
  async objectId(value: unknown): Promise<string> {
    (globalThis as Record<string, unknown>).__u3peek = value;
    const r = await this.post<{ result: { objectId: string } }>('Runtime.evaluate', { expression: 'globalThis.__u3peek' });
    delete (globalThis as Record<string, unknown>).__u3peek;
    return r.result.objectId;
  }
  /** Closure variables of a function: name → objectId (objects only) or primitive value. */
  async scope(fn: Function): Promise<Map<string, { objectId?: string; value?: unknown }>> {
    const id = await this.objectId(fn);
    const props = await this.post<{ internalProperties?: { name: string; value: { objectId?: string } }[] }>('Runtime.getProperties', { objectId: id, ownProperties: true });
    const scopes = props.internalProperties?.find((p) => p.name === '[[Scopes]]');
    const out = new Map<string, { objectId?: string; value?: unknown }>();
    if (!scopes?.value.objectId) return out;
    const list = await this.post<{ result: { name: string; value?: { objectId?: string } }[] }>('Runtime.getProperties', { objectId: scopes.value.objectId, ownProperties: true });
    for (const sc of list.result) {
      if (!sc.value?.objectId) continue;
      const vars = await this.post<{ result: { name: string; value?: { objectId?: string; value?: unknown } }[] }>('Runtime.getProperties', { objectId: sc.value.objectId, ownProperties: true });
      for (const v of vars.result) if (!out.has(v.name)) out.set(v.name, { objectId: v.value?.objectId, value: v.value?.value });
    }
    return out;
  }
  /** Own + private fields of an object: name → objectId or value. */
  async fields(objectId: string): Promise<Map<string, { objectId?: string; value?: unknown }>> {
    const r = await this.post<{ result: { name: string; value?: { objectId?: string; value?: unknown } }[]; privateProperties?: { name: string; value?: { objectId?: string; value?: unknown } }[] }>('Runtime.getProperties', { objectId, ownProperties: true });
    const out = new Map<string, { objectId?: string; value?: unknown }>();
    for (const p of [...r.result, ...(r.privateProperties ?? [])]) out.set(p.name, { objectId: p.value?.objectId, value: p.value?.value });
    return out;
  }
  /** Calls `fn` with `this` bound to the object, returning a JSON value. */
  async call<T>(objectId: string, fn: string): Promise<T> {
    const r = await this.post<{ result: { value: T } }>('Runtime.callFunctionOn', { objectId, functionDeclaration: fn, returnByValue: true });
    return r.result.value;
  }
  /** `.size` of a Map/Set held at a path of fields from a closure variable. */
  async sizeAt(root: string, path: string[]): Promise<number> {
    let id = root;
    for (const name of path) {
      const f = (await this.fields(id)).get(name);
      if (!f?.objectId) throw new Error(`no object field ${name}`);
      id = f.objectId;
    }
    return this.call<number>(id, 'function () { return this.size; }');
  }
  close(): void { this.s.disconnect(); }
}

test('u3: cluster node internals return to baseline after churn', { timeout: 180_000 }, async () => {
  const backend = postgresBackend();
  await backend.setup();
  const prefix = uniqueRedisPrefix('u3i');
  const admin = new Redis(REDIS_URL);
  const cfg = {
    storage: backend.allocate().storage, redisUrl: REDIS_URL, redisKeyPrefix: prefix,
    maxConnectionsPerIP: 100_000, maxConnectionsPerUser: 10,
    rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
    limits: { connectionAttemptsPerMinute: 100_000, maxUnauthenticated: 100_000, maxUnauthenticatedPerIP: 100_000, frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 }, nodeLivenessMs: 3000 },
    chat: { presenceDebounceMs: 20, receiptCoalesceMs: 50 },
  };
  const nodes: TestServer[] = [await startServer(cfg as never, { nodeId: 'u3i-n1' }), await startServer(cfg as never, { nodeId: 'u3i-n2' })];
  const peek = new Peek();
  try {
    const users = Array.from({ length: 20 }, () => newUserId());
    for (let round = 0; round < 3; round++) {
      const clients: (TestClient & { userId: string })[] = [];
      await Promise.all(users.flatMap((u, k) => [nodes[0]!, nodes[1]!, nodes[k % 2]!].map(async (n) => clients.push(await authedClient(n.url, u)))));
      await Promise.all(clients.map(async (c, i) => {
        const to = users[(users.indexOf(c.userId) + 1) % users.length]!;
        const cid = `m${round}-${i}-${randomUUID().slice(0, 6)}`;
        const reply = c.next((f) => f.clientMsgId === cid, true);
        c.send({ type: 'chat_message', recipientId: to, content: 'hi', clientMsgId: cid });
        c.send({ type: 'typing_indicator', recipientId: to, isTyping: true });
        c.send({ type: 'set_presence', visible: (i + round) % 3 !== 0 });
        c.send({ type: 'list_sessions', requestId: `l${i}` });
        const r = await reply.catch(() => undefined);
        if (r?.type === 'message_sent') c.send({ type: 'ack', upTo: r.pos });
      }));
      const midAuth = Array.from({ length: 20 }, (_, i) => openClient(nodes[i % 2]!.url));
      await Promise.all(midAuth.map(async (c, i) => {
        await c.opened;
        c.send({ type: 'auth', token: await token({ sub: users[i]! }) });
        c.terminate();
      }));
      for (const c of clients) c.terminate();
      await Promise.all([...clients, ...midAuth].map((c) => c.closed));
    }
    for (const n of nodes) {
      const vars = await peek.scope(n.server.close);
      const id = (name: string): string => vars.get(name)!.objectId!;
      const state = (await peek.fields((await peek.fields(id('presence'))).get('o')!.objectId!)).get('state')!.objectId!;
      const reg = (await peek.fields(id('limits'))).get('registry')!.objectId!;
      console.log('registry fields', [...(await peek.fields(reg)).keys()].join(' '));
      console.log('admin fields', [...(await peek.fields(id('admin'))).keys()].join(' '));
      const sizes = async (): Promise<Record<string, number>> => ({
        'bus.users': await peek.sizeAt(id('bus'), ['users']),
        'bus.channels': await peek.sizeAt(id('bus'), ['channels']),
        'bus.confirming': await peek.sizeAt(id('bus'), ['confirming']),
        'presence.#timers': await peek.sizeAt(id('presence'), ['#timers']),
        'presence.#local': await peek.sizeAt(id('presence'), ['#local']),
        'presence.#retryMs': await peek.sizeAt(id('presence'), ['#retryMs']),
        'presence.#running': await peek.sizeAt(id('presence'), ['#running']),
        'presenceState.#unsure': await peek.sizeAt(state, ['#unsure']),
        'sessions.byUser': await peek.sizeAt(id('sessions'), ['byUser']),
        'receipts.#sending': await peek.sizeAt(id('receipts'), ['#sending']),
        'receipts.coalescer.#slots': await peek.sizeAt(id('receipts'), ['#coalescer', '#slots']),
      });
      let last: Record<string, number> = {};
      await waitFor(async () => Object.values((last = await sizes())).every((x) => x === 0), 8000, 'baseline').catch(() => {});
      console.log(n.server.nodeId, last);
      assert.deepEqual(Object.entries(last).filter(([, x]) => x !== 0), []);
    }
  } finally {
    peek.close();
    for (const n of nodes) await n.close();
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
  }
});
