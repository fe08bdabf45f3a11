/**
 * What an error may say in a log line. Messages of parsers, drivers and Node itself quote the
 * data they failed on (`JSON.parse`: `Unexpected token 'T', "TOP SECRET"... is not valid JSON`;
 * PostgreSQL: `invalid input syntax for type uuid: "…"`), and that data can be a stored message
 * or a token. So a parser's message is dropped whole (what it quotes is the input, quotes and
 * all), and any other message is cut at its first quote character: a quoted value may itself hold
 * quotes (`'it's'`, PostgreSQL's `"…"` around a value with `"`, JSON-escaped `\"`), so no pairing
 * of quotes can tell where it ends. The class, the code and the wording before the data stay,
 * bounded, which is what an operator needs to find the cause.
 */

/** Longest summary kept: a message longer than this is not a reason, it is a payload. */
const MAX_SUMMARY = 200;

const QUOTE = /['"`]/;

export function errorSummary(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown';
  const code = (err as { code?: unknown }).code;
  const head = typeof code === 'string' || typeof code === 'number' ? `${err.name} ${code}` : err.name;
  if (err.name === 'SyntaxError') return head;
  const quote = err.message.search(QUOTE);
  const text = quote < 0 ? err.message : `${err.message.slice(0, quote)}…`;
  const said = text.length > MAX_SUMMARY ? `${text.slice(0, MAX_SUMMARY)}…` : text;
  return said === '' ? head : `${head}: ${said}`;
}
