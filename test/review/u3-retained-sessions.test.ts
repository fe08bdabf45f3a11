/**
 * u3 probe: once every socket closed, no Session (nor its DeviceStream, nor a ws WebSocket) may
 * stay reachable — sessions killed mid-handshake, mid-auth, mid-replay and mid-request included.
 * Counted with the inspector's Runtime.queryObjects (which collects garbage first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { startServer, authedClient, openClient, newUserId, token, waitFor, type TestClient } from '../helpers/harness.js';
import { Session } from '../../src/session/session.js';
import { DeviceStream } from '../../src/sync/device-stream.js';
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

async function live(peek: Peek, proto: object): Promise<number> {
  const protoId = await peek.objectId(proto);
  const r = await peek.post<{ objects: { objectId: string } }>('Runtime.queryObjects', { prototypeObjectId: protoId, objectGroup: 'u3q' });
  const n = await peek.call<number>(r.objects.objectId, 'function () { return this.length; }');
  // The result array must not keep what it found alive for the next count.
  await peek.post('Runtime.releaseObjectGroup', { objectGroup: 'u3q' });
  return n;
}

const BIG = {
  maxConnectionsPerIP: 100_000, maxConnectionsPerUser: 20,
  rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
  limits: { connectionAttemptsPerMinute: 100_000, maxUnauthenticated: 100_000, maxUnauthenticatedPerIP: 100_000, frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 } },
  chat: { presenceDebounceMs: 20, replayPageSize: 5 },
};

test('u3: no Session stays reachable after churn (mid-auth, mid-replay, mid-request kills)', { timeout: 120_000 }, async () => {
  const s = await startServer(BIG as never);
  const peek = new Peek();
  try {
    const reader = newUserId();
    const writers = Array.from({ length: 10 }, () => newUserId());
    // a backlog for `reader`
    const ws = await Promise.all(writers.map((w) => authedClient(s.url, w)));
    await Promise.all(ws.map(async (c, i) => {
      for (let k = 0; k < 20; k++) {
        const cid = `b${i}-${k}`;
        const reply = c.next((f) => f.clientMsgId === cid, true);
        c.send({ type: 'chat_message', recipientId: reader, content: `backlog ${k} ${'x'.repeat(2000)}`, clientMsgId: cid });
        await reply;
      }
    }));
    for (let round = 0; round < 3; round++) {
      // mid-replay: terminated as soon as auth_success arrives (the replay of 200 events runs)
      const replays = await Promise.all(Array.from({ length: 10 }, () => authedClient(s.url, reader)));
      for (const c of replays) c.terminate();
      // mid-request
      const reqs = await Promise.all(writers.map((w) => authedClient(s.url, w)));
      for (const [i, c] of reqs.entries()) {
        c.send({ type: 'chat_message', recipientId: reader, content: 'x', clientMsgId: `r${round}-${i}` });
        c.send({ type: 'list_conversations', requestId: 'l' });
        c.send({ type: 'history', peerId: reader, requestId: 'h' });
        c.send({ type: 'set_presence', visible: false });
        c.terminate();
      }
      // mid-auth and never-auth
      const mid = Array.from({ length: 10 }, () => openClient(s.url));
      await Promise.all(mid.map(async (c) => { await c.opened; c.send({ type: 'auth', token: await token({ sub: reader }) }); c.terminate(); }));
      const idle = Array.from({ length: 10 }, () => openClient(s.url));
      await Promise.all(idle.map((c) => c.opened));
      for (const c of idle) c.terminate();
      await Promise.all([...replays, ...reqs, ...mid, ...idle].map((c) => c.closed));
    }
    assert.ok((await live(peek, Session.prototype)) >= ws.length, "queryObjects sees live sessions");
    for (const c of ws) c.terminate();
    await Promise.all(ws.map((c) => c.closed));
    await waitFor(() => s.server.stats().open === 0, 5000, 'all sessions closed');
    let counts = { sessions: -1, streams: -1, sockets: -1 };
    await waitFor(async () => {
      counts = { sessions: await live(peek, Session.prototype), streams: await live(peek, DeviceStream.prototype), sockets: await live(peek, WebSocket.prototype) };
      return counts.sessions === 0 && counts.streams === 0;
    }, 5000, 'sessions collected').catch(() => {});
    console.log(counts);
    assert.equal(counts.sessions, 0, `${counts.sessions} closed Session objects still reachable`);
    assert.equal(counts.streams, 0, `${counts.streams} DeviceStream objects still reachable`);
  } finally {
    peek.close();
    await s.close();
  }
});
