import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { parseSafeJson, jsonDepthExceeds, bracketsAtMost, MAX_JSON_DEPTH } from '../../src/pipeline/safe-json.js';
import { validateFrame } from '../../src/pipeline/validate-frame.js';

const protoKeys = Object.getOwnPropertyNames(Object.prototype).sort();

function assertNoPollution(): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoKeys);
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}

afterEach(assertNoPollution);

/** What later code might do with a parsed frame: spread, assign, deep merge. */
function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const current = target[key];
      target[key] = deepMerge((typeof current === 'object' && current !== null ? current : {}) as Record<string, unknown>, value as Record<string, unknown>);
    } else target[key] = value;
  }
  return target;
}

function exercise(value: Record<string, unknown>): void {
  const assigned = Object.assign({}, value);
  assert.equal(Object.getPrototypeOf(assigned), Object.prototype);
  const spread = { ...value };
  assert.equal(Object.getPrototypeOf(spread), Object.prototype);
  const merged = deepMerge({}, value);
  assert.equal(Object.getPrototypeOf(merged), Object.prototype);
  assert.equal((merged as { polluted?: unknown }).polluted, undefined);
}

const POLLUTERS = [
  '{"type":"auth","__proto__":{"polluted":1,"isAdmin":true}}',
  '{"type":"auth","constructor":{"prototype":{"polluted":1}}}',
  '{"type":"auth","prototype":{"polluted":1}}',
  '{"a":{"b":{"__proto__":{"polluted":1}}}}',
  '{"a":[{"__proto__":{"polluted":1}}]}',
  // The same keys spelled with JSON escapes: JSON.parse decodes them to the very same keys.
  '{"type":"auth","\\u005f_proto__":{"polluted":1}}',
  '{"type":"auth","__pr\\u006fto__":{"polluted":1}}',
  '{"type":"auth","\\u0063onstructor":{"\\u0070rototype":{"polluted":1}}}',
  '{"a":{"__\\u0070roto__":{"polluted":1}}}',
  // v2 frames: nested arrays of ids and every new field.
  '{"type":"create_group","name":"g","memberIds":[],"__proto__":{"polluted":1}}',
  '{"type":"add_members","conversationId":"x","userIds":[{"__proto__":{"polluted":1}}]}',
  '{"type":"auth","token":"t","deviceId":"d","after":1,"constructor":{"prototype":{"isAdmin":true}}}',
  '{"type":"ack","upTo":1,"__proto__":{"isAdmin":true}}',
];

test('a frame holding a __proto__ / constructor / prototype key anywhere is refused (forbidden_key), and no prototype changes', () => {
  for (const text of POLLUTERS) {
    assert.deepEqual(parseSafeJson(text), { ok: false, reason: 'forbidden_key' }, text);
    assertNoPollution();
  }
});

test('other keys and values are kept', () => {
  const result = parseSafeJson('{"type":"chat_message","content":"constructor prototype __proto__","n":1,"nested":{"x":[1,2]}}');
  assert.deepEqual(result, { ok: true, value: { type: 'chat_message', content: 'constructor prototype __proto__', n: 1, nested: { x: [1, 2] } } });
});

test('non-object roots are invalid_format', () => {
  for (const text of ['[]', '[{"type":"auth"}]', '"auth"', '42', '1e999', 'null', 'true', 'false', '""']) {
    assert.deepEqual(parseSafeJson(text), { ok: false, reason: 'invalid_format' }, text);
  }
});

test('invalid JSON is invalid_json', () => {
  for (const text of ['', ' ', '{', '{"type":}', "{'type':'auth'}", '{"a":1,}', 'undefined', 'NaN', '{"a":NaN}', '{"a":Infinity}', '\u0000', '{"a":"\u0001"}', '{"a":1}{"b":2}', '{"__proto__":']) {
    assert.deepEqual(parseSafeJson(text), { ok: false, reason: 'invalid_json' }, JSON.stringify(text));
  }
});

test('deep nesting is invalid_format, refused before JSON.parse runs', () => {
  const deep = (n: number, open = '{"a":', close = '}') => `${open.repeat(n)}1${close.repeat(n)}`;
  assert.equal(parseSafeJson(deep(MAX_JSON_DEPTH - 1)).ok, true);
  assert.deepEqual(parseSafeJson(deep(MAX_JSON_DEPTH + 1)), { ok: false, reason: 'invalid_format' });
  assert.deepEqual(parseSafeJson(`{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), { ok: false, reason: 'invalid_format' });
  // Unbalanced deep garbage is refused too (never handed to the recursive parser).
  assert.deepEqual(parseSafeJson('['.repeat(1_000_000)), { ok: false, reason: 'invalid_format' });
  // Brackets inside strings (and escaped quotes) do not count.
  const inString = `{"a":"${'[{'.repeat(1000)}\\"${'{'.repeat(50)}"}`;
  assert.equal(parseSafeJson(inString).ok, true);
  assert.equal(jsonDepthExceeds('{"a":"\\\\"}', 1), false);
  // The quick count decides a frame only when it cannot be too deep; exactly at the depth limit passes.
  assert.equal(bracketsAtMost(deep(MAX_JSON_DEPTH), MAX_JSON_DEPTH), true);
  assert.equal(parseSafeJson(deep(MAX_JSON_DEPTH)).ok, true);
  assert.equal(bracketsAtMost(deep(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH), false);
  assert.equal(bracketsAtMost('{"a":[1,{"b":[]}]}', 4), true);
  assert.equal(bracketsAtMost('{"a":[1,{"b":[]}]}', 3), false);
  // Many brackets, all shallow: the count says "maybe", the full scan says fine.
  const wide = `{"a":[${Array.from({ length: 50 }, () => '{}').join(',')}]}`;
  assert.equal(bracketsAtMost(wide, MAX_JSON_DEPTH), false);
  assert.equal(parseSafeJson(wide).ok, true);
});

test('huge numbers are handled without throwing', () => {
  const big = '9'.repeat(400);
  for (const text of [`{"limit":1e999}`, `{"limit":-1e999}`, `{"limit":${big}}`, `{"limit":-${big}}`, `{"limit":1e-999}`, `{"limit":${big}.${big}e${big}}`]) {
    const result = parseSafeJson(text);
    assert.equal(result.ok, true, text);
  }
  // …and never pass a schema that wants a bounded integer.
  for (const limit of ['1e999', big, '-1e999', '1e-999']) {
    const parsed = parseSafeJson(`{"type":"history","peerId":"6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10","limit":${limit}}`);
    assert.ok(parsed.ok);
    if (!parsed.ok) continue;
    const frame = validateFrame(parsed.value);
    assert.equal(frame.ok, false, limit);
  }
  // v2 positions (pos, seq) are safe integers: huge, negative, fractional or unsafe ones are refused.
  const C = '11111111-2222-4333-8444-555555555555';
  // (1e-999 parses to 0, a valid position, so it is not in this list.)
  for (const n of ['1e999', big, '-1e999', '9007199254740993', '-1', '0.5']) {
    for (const text of [
      `{"type":"ack","upTo":${n}}`,
      `{"type":"auth","token":"t","after":${n}}`,
      `{"type":"history","conversationId":"${C}","beforeSeq":${n}}`,
      `{"type":"read","conversationId":"${C}","upToSeq":${n}}`,
    ]) {
      const parsed = parseSafeJson(text);
      assert.ok(parsed.ok, text);
      if (!parsed.ok) continue;
      const frame = validateFrame(parsed.value);
      assert.equal(frame.ok, false, text);
    }
  }
});

test('the words themselves are fine in values: only keys are refused', () => {
  const parsed = parseSafeJson('{"type":"chat_message","content":"__proto__ constructor prototype","clientMsgId":"constructor"}');
  assert.deepEqual(parsed, { ok: true, value: { type: 'chat_message', content: '__proto__ constructor prototype', clientMsgId: 'constructor' } });
  assertNoPollution();
});
