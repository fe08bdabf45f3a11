/**
 * u3 probe: per-user/per-session structures inside one node must return to their baseline once
 * every session closed (a structure that grows per user/session and never shrinks is a leak).
 * Internals are read through the inspector (closure variables of createRampartServer, #fields).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, authedClient, openClient, newUserId, token, waitFor, type TestClient } from '../helpers/harness.js';
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

const BIG = {
  maxConnectionsPerIP: 100_000,
  maxConnectionsPerUser: 10,
  rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
  limits: {
    connectionAttemptsPerMinute: 100_000, maxUnauthenticated: 100_000, maxUnauthenticatedPerIP: 100_000,
    frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 }, typing: { limit: 1000, windowMs: 1000 },
  },
  chat: { presenceDebounceMs: 20, receiptCoalesceMs: 50 },
};

async function churn(url: string, users: string[], rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const clients: (TestClient & { userId: string })[] = [];
    await Promise.all(users.flatMap((u) => [0, 1].map(async () => clients.push(await authedClient(url, u)))));
    await Promise.all(clients.map(async (c, i) => {
      const to = users[(users.indexOf(c.userId) + 1) % users.length]!;
      const cid = `m${round}-${i}-${randomUUID().slice(0, 6)}`;
      const reply = c.next((f) => f.clientMsgId === cid, true);
      c.send({ type: 'chat_message', recipientId: to, content: 'hi', clientMsgId: cid });
      c.send({ type: 'typing_indicator', recipientId: to, isTyping: true });
      c.send({ type: 'set_presence', visible: (i + round) % 3 !== 0 });
      const r = await reply.catch(() => undefined);
      if (r?.type === 'message_sent') {
        c.send({ type: 'ack', upTo: r.pos });
        c.send({ type: 'read', conversationId: r.conversationId, upToSeq: r.seq ?? 1 });
      }
    }));
    const midAuth = Array.from({ length: 20 }, () => openClient(url));
    await Promise.all(midAuth.map(async (c, i) => {
      await c.opened;
      c.send({ type: 'auth', token: await token({ sub: users[i % users.length]! }) });
      c.terminate();
    }));
    for (const c of clients) c.terminate();
    await Promise.all([...clients, ...midAuth].map((c) => c.closed));
  }
}

test('u3: per-user structures of one node return to baseline after churn', { timeout: 120_000 }, async () => {
  const s = await startServer(BIG as never);
  const peek = new Peek();
  try {
    const users = Array.from({ length: 40 }, () => newUserId());
    await churn(s.url, users, 3);
    const vars = await peek.scope(s.server.close);
    const id = (n: string): string => vars.get(n)!.objectId!;
    const sizes = async (): Promise<Record<string, number>> => {
      await peek.call(id('limiter'), 'function () { this.sweep(Date.now() + 86400000); }');
      return {
        'presence.#timers': await peek.sizeAt(id('presence'), ['#timers']),
        'presence.#local': await peek.sizeAt(id('presence'), ['#local']),
        'presence.#retryMs': await peek.sizeAt(id('presence'), ['#retryMs']),
        'presence.#running': await peek.sizeAt(id('presence'), ['#running']),
        'sessions.byUser': await peek.sizeAt(id('sessions'), ['byUser']),
        'bus.users': await peek.sizeAt(id('bus'), ['users']),
        'connections.open': await peek.sizeAt(id('connections'), ['open']),
        'connections.unauthenticated': await peek.sizeAt(id('connections'), ['unauthenticated']),
        'connections.unauthByIp': await peek.sizeAt(id('connections'), ['unauthByIp']),
        'connections.pendingByIp': await peek.sizeAt(id('connections'), ['pendingByIp']),
        'receipts.#sending': await peek.sizeAt(id('receipts'), ['#sending']),
        'receipts.coalescer.#slots': await peek.sizeAt(id('receipts'), ['#coalescer', '#slots']),
        'hooks.timers.size': await peek.call<number>((await peek.fields(id('hooks'))).get('timers')!.objectId!, 'function () { return this.size; }'),
        'limiter.entries': await peek.sizeAt(id('limiter'), ['entries']),
      };
    };
    let last: Record<string, number> = {};
    await waitFor(async () => Object.values((last = await sizes())).every((n) => n === 0), 8000, 'baseline').catch(() => {});
    console.log(last);
    assert.deepEqual(Object.entries(last).filter(([, n]) => n !== 0), []);
  } finally {
    peek.close();
    await s.close();
  }
});
