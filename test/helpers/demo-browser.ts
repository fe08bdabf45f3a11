/**
 * What the browser tests of the demo page share: the client SDK built as the page loads it, one
 * Rampart server and one Chromium (Debian's, /usr/bin/chromium, driven by playwright-core) per test
 * file, and the steps on the page (sign in, open a chat, send, read the transcript). When Chromium
 * is missing the tests FAIL with the install command (they are never skipped).
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { freePort, startServer, type TestServer } from './harness.js';
import { demoUserId } from '../../src/server/dev-tokens.js';

/** Debian's Chromium; CHROMIUM_PATH overrides it (only to point at another system build). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// docs/demo.png is refreshed only on request (RAMPART_UPDATE_SCREENSHOT=1), so a test run leaves
// the tree clean; otherwise the screenshot goes to the temp dir and is still checked.
export const SCREENSHOT = process.env.RAMPART_UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs/demo.png') : join(tmpdir(), `rampart-demo-${process.pid}.png`);
export const STEP_MS = 10_000;
let run = 0;
/** Demo names unique to this test file run (the server's database is fresh, names only need to differ per test). */
export const uniq = (name: string) => `${name}${++run}`;

/**
 * Rampart on a port chosen before start, so its own origin can be the one allowed origin. Presence
 * changes are published after 100 ms (not 2 s) and receipts coalesced over 50 ms, so the tests
 * wait for config timings, never for sleeps.
 */
export async function startOnKnownPort(): Promise<TestServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      // No jwt key: the server signs with its development key, the one /dev/token uses.
      // strangerPrivacy off: these tests look at ticks and presence right after one side's first
      // message; with the default, a direct conversation shares them once both sides wrote
      // (protocol.md §6a, tested in test/integration/receipts-edits-presence.test.ts).
      return await startServer({ port, allowedOrigins: [`http://127.0.0.1:${port}`], jwt: {}, chat: { presenceDebounceMs: 100, receiptCoalesceMs: 50, strangerPrivacy: false } });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

/**
 * The page loads the SDK as tsc emits it (dist/client, dist/protocol): builds exactly that. Each
 * browser test file builds it, and two of them may run at once while the other's server reads these
 * files per request; tsc truncates and rewrites a file in place, so the build goes to a directory of
 * its own under dist/ and each file is then renamed over the served one (atomic: a reader gets the
 * old file or the new one, never a half-written one; both have the same content).
 */
function buildClient(): void {
  const dist = join(ROOT, 'dist');
  const staging = join(dist, `.client-build-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.client.json', '--outDir', staging], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    const move = (rel: string): void => {
      for (const entry of readdirSync(join(staging, rel), { withFileTypes: true })) {
        const path = join(rel, entry.name);
        if (entry.isDirectory()) {
          mkdirSync(join(dist, path), { recursive: true });
          move(path);
        } else {
          renameSync(join(staging, path), join(dist, path));
        }
      }
    };
    move('');
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export interface Tab {
  name: string;
  id: string;
  page: Page;
  context: BrowserContext;
  /** Text frames the page sent, parsed. */
  sent: { type: string; [k: string]: unknown }[];
  /** Dialogs, uncaught page errors and CSP violations: each fails the test unless expected. */
  problems: string[];
}

/** GET on the server with chosen headers (what a browser on another origin would send). */
export function httpGet(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function openChat(from: Tab, to: Tab): Promise<void> {
  await from.page.getByTestId('peer-input').fill(to.name);
  await from.page.getByTestId('open-chat-button').click();
  await from.page.getByTestId('conversation-title').filter({ hasText: to.name }).waitFor();
}

export async function say(from: Tab, text: string): Promise<void> {
  await from.page.getByTestId('message-input').fill(text);
  await from.page.getByTestId('send-button').click();
}

export const messages = (t: Tab, direction?: 'in' | 'out') => t.page.locator(`[data-testid="message"]${direction ? `[data-direction="${direction}"]` : ''}`);
export const sentBubbles = (t: Tab) => t.page.locator('[data-testid="message"][data-direction="out"][data-state="sent"]');

/** The open conversation as [direction, content HTML] rows, in order. */
export async function transcript(t: Tab): Promise<string[]> {
  return messages(t).evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.direction} ${e.querySelector('[data-testid="message-content"]')?.innerHTML}`));
}

export function assertNoProblems(...tabs: Tab[]): void {
  for (const t of tabs) assert.deepEqual(t.problems, [], `page of ${t.name}`);
}

export interface DemoBrowser {
  /** The Rampart server (set once `before` ran). */
  readonly srv: TestServer | undefined;
  /** The Chromium (set once `before` ran). */
  readonly browser: Browser | undefined;
  /** A fresh browser context, closed after the file's tests. */
  newContext(): Promise<BrowserContext>;
  /** Opens the demo in a new tab (of `context`, or a fresh browser context) and signs in as `name`. */
  openDemo(name: string, context?: BrowserContext): Promise<Tab>;
}

/**
 * Call inside a test file's `describe`: registers the `before` that builds the client SDK, starts
 * the server and launches Chromium, and the `after` that closes them (and every context opened).
 */
export function demoBrowser(): DemoBrowser {
  let srv: TestServer | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: the browser tests need it. Install it with ` +
        '`apt-get update && apt-get install -y chromium` (or run .ci/run).');
    }
    buildClient();
    srv = await startOnKnownPort();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await srv?.close();
  });

  async function newContext(): Promise<BrowserContext> {
    assert.ok(browser);
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    context.setDefaultTimeout(STEP_MS);
    contexts.push(context);
    return context;
  }

  async function openDemo(name: string, context?: BrowserContext): Promise<Tab> {
    assert.ok(srv);
    const ctx = context ?? (await newContext());
    const page = await ctx.newPage();
    const tab: Tab = { name, id: demoUserId(name), page, context: ctx, sent: [], problems: [] };
    page.on('dialog', (d) => {
      tab.problems.push(`dialog ${d.type()}: ${d.message()}`);
      void d.dismiss();
    });
    page.on('pageerror', (e) => tab.problems.push(`page error: ${e.message}`));
    page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
      if (typeof payload === 'string') tab.sent.push(JSON.parse(payload) as Tab['sent'][number]);
    }));
    await page.exposeFunction('__reportCsp', (d: string) => tab.problems.push(`CSP violation: ${d}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => (window as unknown as { __reportCsp(d: string): void }).__reportCsp(`${e.effectiveDirective} ${e.blockedURI}`));
    });
    const response = await page.goto(`${srv.httpUrl}/`);
    assert.equal(response?.status(), 200);
    const csp = response?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /require-trusted-types-for 'script'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await page.getByTestId('name-input').fill(name);
    await page.getByTestId('connect-button').click();
    await page.locator('[data-testid="connection-state"][data-state="open"]').waitFor();
    await page.getByTestId('own-id').filter({ hasText: tab.id }).waitFor();
    return tab;
  }

  return {
    get srv() {
      return srv;
    },
    get browser() {
      return browser;
    },
    newContext,
    openDemo,
  };
}
