/**
 * u2 probe (docs against reality): what `rampart check-config` does with a RAMPART_* variable that
 * names no config key.
 *
 * docs/operations.md:278-280: "the exit code is 1 when there is an error — also when the file cannot
 * be read or is not JSON, or a `RAMPART_*` variable names no key path (each an `ERROR` line, then
 * `grade: F`)".
 *
 * src/cli/check-config.ts:15 grades such a variable `warn` (grade B, exit 0), as docs/protocol.md §9
 * and docs/operations.md:257-259 say `serve` does (warned and ignored). The docs contradict each
 * other and the tool; this probe holds the tool to operations.md:278-280 and fails on the current code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigReport } from '../../src/cli/check-config.js';

test('check-config: a RAMPART_* variable naming no key path is an ERROR line, grade F, exit 1 (operations.md:278-280)', () => {
  const { code, text } = checkConfigReport({}, ['RAMPART_NO_SUCH_KEY'], false);
  assert.match(text, /^ERROR\s+RAMPART_NO_SUCH_KEY/m, text);
  assert.match(text, /grade: F/, text);
  assert.equal(code, 1, text);
});
