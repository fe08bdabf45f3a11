/**
 * u3 probe: the SQLite store's id caches (#userIds, #convsByUuid/#convsById, #directIds) gain an
 * entry for every user and conversation the node ever touched and are only cleared by close():
 * unbounded growth per user. The PostgreSQL adapter bounds the same caches (CACHE_LIMIT 100 000,
 * postgres-store.ts:113) and the SQLite counter caches are bounded too (COUNTER_CACHE_LIMIT 100 000,
 * sqlite-store.ts:365). Expected: the user-id cache stays within that same bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer } from '../helpers/harness.js';
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

const BOUND = 100_000;

test('u3: SQLite user-id cache grows with every user ever seen (no bound)', { timeout: 300_000 }, async () => {
  const s = await startServer();
  const peek = new Peek();
  try {
    const vars = await peek.scope(s.server.close);
    const storeId = vars.get('store')!.objectId!;
    await peek.call(storeId, 'function () { globalThis.__u3store = this; }');
    const store = (globalThis as Record<string, unknown>).__u3store as { setPresenceVisible(t: string, u: string, v: boolean): Promise<void> };
    delete (globalThis as Record<string, unknown>).__u3store;
    // BOUND + 1000 distinct users each make one write (what a set_presence of each would do), then are gone.
    for (let i = 0; i < BOUND + 1000; i++) await store.setPresenceVisible('default', randomUUID(), true);
    const userIds = (await peek.fields(storeId)).get('#userIds')!.objectId!;
    const cached = await peek.call<number>(userIds, 'function () { let n = 0; for (const m of this.values()) n += m.size; return n; }');
    console.log('cached user ids', cached);
    assert.ok(cached <= BOUND, `the SQLite user-id cache holds ${cached} entries (> ${BOUND}): one per user ever seen, never dropped`);
  } finally {
    peek.close();
    await s.close();
  }
});
