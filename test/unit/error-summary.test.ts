/** errorSummary: the class, code and wording of an error, never the data it quotes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorSummary } from '../../src/observability/error-summary.js';

test('a parser error keeps only its class: what it quotes is the input', () => {
  let caught: unknown;
  try {
    JSON.parse('TOP SECRET merger plans');
  } catch (err) {
    caught = err;
  }
  assert.equal(errorSummary(caught), 'SyntaxError');
});

test('a message is cut at its first quote: class, code and the wording before the data stay', () => {
  const err = Object.assign(new Error('invalid input syntax for type uuid: "my secret token"'), { code: '22P02' });
  assert.equal(errorSummary(err), 'Error 22P02: invalid input syntax for type uuid: …');
  assert.equal(errorSummary(new TypeError("cannot read 'abc' of `x` and \"unclosed tail")), 'TypeError: cannot read …');
  assert.equal(errorSummary(new TypeError("Cannot create property 'foo' on string 'it's TOP SECRET'")), 'TypeError: Cannot create property …', 'a quote inside the quoted value');
});

test('a long message is bounded, and what is not an Error says nothing', () => {
  const s = errorSummary(new Error('x'.repeat(5000)));
  assert.ok(s.length <= 'Error: '.length + 201, `${s.length} characters`);
  assert.equal(errorSummary('a string with content'), 'unknown');
  assert.equal(errorSummary({ message: 'content' }), 'unknown');
  assert.equal(errorSummary(Object.assign(new Error(''), { code: 'ECONNREFUSED' })), 'Error ECONNREFUSED');
});
