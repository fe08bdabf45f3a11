/**
 * The demo page's files, development mode only: an allowlist of paths mapped to files (the page,
 * its script and style from public/, the client SDK as tsc emits it into dist/client, and the
 * dependency-free protocol modules it imports). Nothing outside the list is ever read.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The SDK's browser modules (not `node.js` or `file-sync-store.js`: they import Node built-ins). */
const CLIENT_MODULES = ['index', 'rampart-client', 'backoff', 'client-msg-id', 'clock', 'emitter', 'events', 'pos-tracker', 'receipt-positions', 'outgoing-checks', 'refusals', 'request-pacing', 'requests', 'send-queue', 'socket', 'sync-store', 'token-source', 'ack-schedule', 'client-types', 'flow-control', 'identity', 'liveness', 'server-answers', 'state-persistence', 'timeline', 'token-refresh'];
const PROTOCOL_MODULES = ['bounds', 'close-codes', 'reasons', 'server-frames', 'url'];

export interface DemoAsset {
  file: string;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Where the compiled SDK lives: dist/ beside src/ when running from source (tsx), else our own dist/. */
function distDir(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  return fileURLToPath(new URL(fromSource ? '../../dist/' : '../', import.meta.url));
}

export function demoAssets(publicDir: string, dist = distDir()): ReadonlyMap<string, DemoAsset> {
  const map = new Map<string, DemoAsset>();
  const add = (path: string, file: string) => map.set(path, { file, type: TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream' });
  add('/', join(publicDir, 'index.html'));
  add('/demo', join(publicDir, 'index.html'));
  add('/demo.js', join(publicDir, 'demo.js'));
  add('/demo-render.js', join(publicDir, 'demo-render.js'));
  add('/demo.css', join(publicDir, 'demo.css'));
  for (const m of CLIENT_MODULES) add(`/client/${m}.js`, join(dist, 'client', `${m}.js`));
  for (const m of PROTOCOL_MODULES) add(`/protocol/${m}.js`, join(dist, 'protocol', `${m}.js`));
  return map;
}

/**
 * The demo's Content-Security-Policy: scripts and styles from this origin only (no inline code),
 * no plugins, no framing, and Trusted Types enforced with no policy allowed — so no string can
 * ever reach an HTML or script sink.
 */
export const DEMO_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";
