import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, authedClient, newUserId, waitFor } from '../helpers/harness.js';
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

test('explore', { timeout: 60_000 }, async () => {
  const s = await startServer({ chat: { presenceDebounceMs: 20 } } as never);
  const peek = new Peek();
  try {
    const vars = await peek.scope(s.server.close);
    console.log([...vars.keys()].join(' '));
    for (const name of ['presence', 'sessions', 'connections', 'store', 'receipts', 'chat', 'bus', 'hooks', 'limiter', 'publisher']) {
      const v = vars.get(name);
      if (!v?.objectId) { console.log(name, 'missing'); continue; }
      const f = await peek.fields(v.objectId);
      console.log(name, [...f.keys()].join(' '));
    }
  } finally {
    peek.close();
    await s.close();
  }
});
