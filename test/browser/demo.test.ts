/**
 * The demo page (public/index.html + demo.js on the client SDK) in a real Chromium driven by
 * playwright-core: two users chat, a group, typing, delivery and read ticks from receipts, edits and
 * deletes (tombstones), who is online, offline messages arriving on reconnect, one user in two tabs, XSS payloads that stay inert under a CSP with Trusted Types,
 * a page on another origin that can neither open a socket nor get a token, and the screenshot in
 * docs/demo.png. Chromium is Debian's (/usr/bin/chromium); when it is missing the suite FAILS with
 * the install command (it is never skipped).
 */
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, waitFor, type TestServer } from '../helpers/harness.js';
import { demoUserId } from '../../src/server/dev-tokens.js';

/** Debian's Chromium; CHROMIUM_PATH overrides it (only to point at another system build). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// docs/demo.png is refreshed only on request (RAMPART_UPDATE_SCREENSHOT=1), so a test run leaves
// the tree clean; otherwise the screenshot goes to the temp dir and is still checked.
const SCREENSHOT = process.env.RAMPART_UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs/demo.png') : join(tmpdir(), `rampart-demo-${process.pid}.png`);
const STEP_MS = 10_000;
let run = 0;
/** Demo names unique to this test file run (the server's database is fresh, names only need to differ per test). */
const uniq = (name: string) => `${name}${++run}`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Rampart on a port chosen before start, so its own origin can be the one allowed origin. Presence
 * changes are published after 100 ms (not 2 s) and receipts coalesced over 50 ms, so the tests
 * wait for config timings, never for sleeps.
 */
async function startOnKnownPort(): Promise<TestServer> {
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

interface Tab {
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
function httpGet(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('demo page on the client SDK, in Chromium', () => {
  let srv: TestServer | undefined;
  let browser: Browser | undefined;
  let foreign: HttpServer | undefined;
  const contexts: BrowserContext[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: the browser tests need it. Install it with ` +
        '`apt-get update && apt-get install -y chromium` (or run .ci/run).');
    }
    // The page loads the SDK as tsc emits it (dist/client): build exactly that.
    const build = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.client.json'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    srv = await startOnKnownPort();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (foreign) await new Promise((r) => foreign?.close(r));
    await srv?.close();
  });

  async function newContext(): Promise<BrowserContext> {
    assert.ok(browser);
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    context.setDefaultTimeout(STEP_MS);
    contexts.push(context);
    return context;
  }

  /** Opens the demo in a new tab (of `context`, or a fresh browser context) and signs in as `name`. */
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

  async function openChat(from: Tab, to: Tab): Promise<void> {
    await from.page.getByTestId('peer-input').fill(to.name);
    await from.page.getByTestId('open-chat-button').click();
    await from.page.getByTestId('conversation-title').filter({ hasText: to.name }).waitFor();
  }

  async function say(from: Tab, text: string): Promise<void> {
    await from.page.getByTestId('message-input').fill(text);
    await from.page.getByTestId('send-button').click();
  }

  const messages = (t: Tab, direction?: 'in' | 'out') => t.page.locator(`[data-testid="message"]${direction ? `[data-direction="${direction}"]` : ''}`);
  const sentBubbles = (t: Tab) => t.page.locator('[data-testid="message"][data-direction="out"][data-state="sent"]');

  /** The open conversation as [direction, content HTML] rows, in order. */
  async function transcript(t: Tab): Promise<string[]> {
    return messages(t).evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.direction} ${e.querySelector('[data-testid="message-content"]')?.innerHTML}`));
  }

  function assertNoProblems(...tabs: Tab[]): void {
    for (const t of tabs) assert.deepEqual(t.problems, [], `page of ${t.name}`);
  }

  test('two users chat: delivery, sent state, typing, acks and read receipts', { timeout: 60_000 }, async () => {
    const [a, b] = [await openDemo(uniq('alice')), await openDemo(uniq('bob'))];
    await openChat(a, b);
    await say(a, 'hello <b>Bob</b> & co');
    await sentBubbles(a).first().waitFor();
    // B's client has it (and acknowledges it) before B opens the conversation: A sees ✓✓ delivered.
    const row = b.page.locator('[data-testid="conversation"][data-unread="1"]');
    await row.waitFor();
    await sentBubbles(a).first().locator('[data-testid="ticks"][data-receipt="delivered"]').waitFor();
    assert.equal(await sentBubbles(a).first().getByTestId('ticks').textContent(), '✓✓');
    // B opens it and reads it: A sees the read tick.
    await row.click();
    await messages(b, 'in').first().waitFor();
    assert.equal(await messages(b, 'in').first().getByTestId('message-content').innerHTML(), 'hello <b>Bob</b> &amp; co');
    const id = await messages(b, 'in').first().getAttribute('data-id');
    assert.equal(await sentBubbles(a).first().getAttribute('data-id'), id, 'the sender bubble carries the server id');
    // The sender's own copy is rendered (by DOM calls) exactly as the recipient sees it.
    assert.equal(await sentBubbles(a).first().getByTestId('message-content').innerHTML(), 'hello <b>Bob</b> &amp; co');
    // B acknowledges by position and sends a read receipt for the conversation.
    await waitFor(() => b.sent.some((f) => f.type === 'ack' && typeof f.upTo === 'number' && f.upTo >= 1), STEP_MS, 'B to ack');
    await waitFor(() => b.sent.some((f) => f.type === 'read' && f.upToSeq === 1), STEP_MS, 'B to send a read receipt');
    await b.page.locator('[data-testid="messages"][data-read-seq="1"]').waitFor();
    assert.equal(await b.page.locator('[data-testid="conversation"][data-unread="0"]').count(), 1);
    await sentBubbles(a).first().locator('[data-testid="ticks"][data-receipt="read"]').waitFor();
    // Typing: throttled, shown on the other side, cleared by the message.
    await b.page.getByTestId('message-input').pressSequentially('hi');
    await a.page.getByTestId('typing-indicator').filter({ hasText: `${b.name} is typing…` }).waitFor();
    assert.equal(b.sent.filter((f) => f.type === 'typing_indicator' && f.isTyping === true).length, 1);
    await b.page.getByTestId('message-input').fill('hi <em>back</em>');
    await b.page.getByTestId('send-button').click();
    await messages(a, 'in').first().waitFor();
    await a.page.getByTestId('typing-indicator').filter({ hasText: /^$/ }).waitFor();
    assert.deepEqual(await transcript(a), ['out hello <b>Bob</b> &amp; co', 'in hi <em>back</em>']);
    const auth = a.sent[0];
    assert.equal(auth?.type, 'auth', 'auth is the first frame');
    assert.equal(typeof auth?.deviceId, 'string');
    assertNoProblems(a, b);
  });

  test('edit and delete of one’s own messages: the peer sees the edit and the tombstone, live and from history', { timeout: 60_000 }, async () => {
    const [a, b] = [await openDemo(uniq('edna')), await openDemo(uniq('dave'))];
    await openChat(a, b);
    await openChat(b, a);
    await say(a, 'helo wrold');
    await say(a, 'my password is hunter2');
    await sentBubbles(a).nth(1).waitFor();
    await messages(b, 'in').nth(1).waitFor();
    // Only one's own messages can be changed.
    assert.equal(await messages(b, 'in').getByTestId('edit-button').count(), 0);
    assert.equal(await messages(b, 'in').getByTestId('delete-button').count(), 0);
    // Edit: the composer takes the text, Save sends edit_message.
    await sentBubbles(a).nth(0).getByTestId('edit-button').click();
    assert.equal(await a.page.getByTestId('message-input').inputValue(), 'helo wrold');
    assert.equal(await a.page.getByTestId('send-button').textContent(), 'Save');
    await a.page.getByTestId('message-input').fill('hello <b>world</b>');
    await a.page.getByTestId('send-button').click();
    const editedIn = messages(b, 'in').nth(0);
    await b.page.locator('[data-testid="message"][data-direction="in"][data-edited="true"]').waitFor();
    assert.equal(await editedIn.getByTestId('message-content').innerHTML(), 'hello <b>world</b>');
    assert.match((await editedIn.getByTestId('message-edited').textContent()) ?? '', /^edited /);
    await a.page.locator('[data-testid="message"][data-direction="out"][data-edited="true"]').waitFor();
    assert.equal(await sentBubbles(a).nth(0).getByTestId('message-content').innerHTML(), 'hello <b>world</b>');
    assert.equal(await a.page.getByTestId('send-button').textContent(), 'Send', 'the composer is back to sending');
    // Delete: two clicks (no dialog); both sides show a tombstone, the content is gone.
    const del = sentBubbles(a).nth(1).getByTestId('delete-button');
    await del.click();
    await a.page.locator('[data-testid="delete-button"][data-armed="true"]').waitFor();
    await del.click();
    const tomb = b.page.locator('[data-testid="message"][data-direction="in"][data-deleted="true"]');
    await tomb.waitFor();
    assert.match((await tomb.getByTestId('message-content').textContent()) ?? '', /^message deleted · /);
    await a.page.locator('[data-testid="message"][data-direction="out"][data-deleted="true"]').waitFor();
    for (const t of [a, b]) assert.doesNotMatch((await t.page.getByTestId('messages').textContent()) ?? '', /hunter2/);
    assert.equal(await sentBubbles(a).nth(1).getByTestId('edit-button').count(), 0, 'a tombstone has no actions');
    const edits = a.sent.filter((f) => f.type === 'edit_message');
    const deletes = a.sent.filter((f) => f.type === 'delete_message');
    assert.equal(edits.length, 1);
    assert.equal(deletes.length, 1);
    assert.equal(typeof edits[0]?.clientMsgId, 'string', 'idempotency key on the edit');
    assert.equal(typeof deletes[0]?.clientMsgId, 'string', 'idempotency key on the delete');
    // A fresh tab of B reads the conversation from history: the latest content and the tombstone.
    const b2 = await openDemo(b.name, b.context);
    await b2.page.locator('[data-testid="conversation"]').first().click();
    await b2.page.locator('[data-testid="message"][data-deleted="true"]').waitFor();
    assert.equal(await messages(b2).nth(0).getByTestId('message-content').innerHTML(), 'hello <b>world</b>');
    assert.equal(await messages(b2).nth(0).getAttribute('data-edited'), 'true');
    assert.equal(await messages(b2).count(), 2);
    assertNoProblems(a, b, b2);
  });

  test('who is online: B shows as online for A, and offline once B’s page closes', { timeout: 60_000 }, async () => {
    const a = await openDemo(uniq('olga'));
    const bContext = await newContext();
    const b = await openDemo(uniq('pete'), bContext);
    await openChat(a, b);
    await say(a, 'are you there?');
    await sentBubbles(a).first().waitFor();
    // The presence line of the open conversation, and the dot in the conversation list.
    await a.page.getByTestId('presence').filter({ hasText: `${b.name} online` }).waitFor();
    assert.equal(await a.page.getByTestId('presence').getAttribute('data-online'), b.id);
    await a.page.locator('[data-testid="conversation"]').getByTestId('online-dot').waitFor();
    assert.ok(a.sent.some((f) => f.type === 'presence'), 'asked the server who is online');
    // B's page closes: after chat.presenceDebounceMs the server tells A.
    await bContext.close();
    await a.page.getByTestId('presence').filter({ hasText: 'nobody else online' }).waitFor();
    assert.equal(await a.page.getByTestId('online-dot').count(), 0);
    assert.equal(await a.page.getByTestId('presence').getAttribute('data-online'), '');
    assertNoProblems(a);
  });

  test('a group: created in the demo, used by three users', { timeout: 60_000 }, async () => {
    const [a, b, c] = [await openDemo(uniq('ann')), await openDemo(uniq('ben')), await openDemo(uniq('cat'))];
    await a.page.getByTestId('group-name-input').fill('Ops');
    await a.page.getByTestId('group-members-input').fill(`${b.name}, ${c.name}`);
    await a.page.getByTestId('create-group-button').click();
    await a.page.getByTestId('conversation-title').filter({ hasText: '# Ops' }).waitFor();
    await a.page.getByTestId('event').filter({ hasText: 'created “Ops”' }).waitFor();
    await say(a, 'standup in 5');
    await sentBubbles(a).first().waitFor();
    for (const t of [b, c]) {
      const row = t.page.locator('[data-testid="conversation"]').filter({ hasText: '# Ops' });
      await row.waitFor();
      await row.click();
      await messages(t, 'in').filter({ hasText: 'standup in 5' }).waitFor();
      await t.page.getByTestId('event').filter({ hasText: 'created “Ops”' }).waitFor();
    }
    await say(c, 'on my way');
    for (const t of [a, b]) await messages(t, 'in').filter({ hasText: 'on my way' }).waitFor();
    assert.deepEqual(await transcript(b), ['in standup in 5', 'in on my way']);
    assert.ok(a.sent.some((f) => f.type === 'create_group' && f.name === 'Ops'));
    assertNoProblems(a, b, c);
  });

  test('names, edits and links read as their authors wrote them: a group name unescaped, an edit keeps its formatting, a link shows where it goes', { timeout: 60_000 }, async () => {
    const [a, b] = [await openDemo(uniq('rita')), await openDemo(uniq('sam'))];
    // A group name the server stores HTML-escaped is shown as typed, in the title and the event.
    const name = 'R&D "<b>x</b>" \'q\'';
    await a.page.getByTestId('group-name-input').fill(name);
    await a.page.getByTestId('group-members-input').fill(b.name);
    await a.page.getByTestId('create-group-button').click();
    const row = b.page.locator('[data-testid="conversation"]').first();
    await row.waitFor();
    await row.click();
    await b.page.getByTestId('event').first().waitFor();
    assert.equal(await b.page.getByTestId('conversation-title').textContent(), `# ${name}`);
    assert.ok((await b.page.getByTestId('event').first().textContent())?.includes(`created “${name}”`));
    // Edit starts from the message as sent, formatting included.
    await openChat(a, b);
    await say(a, 'hello <b>world</b> pay at https://\u0430pple.com/billing or https://www.google.com@evil.example/');
    await sentBubbles(a).first().waitFor();
    await sentBubbles(a).first().getByTestId('edit-button').click();
    assert.equal(await a.page.getByTestId('message-input').inputValue(), 'hello <b>world</b> pay at https://\u0430pple.com/billing or https://www.google.com@evil.example/');
    await a.page.getByTestId('cancel-edit-button').click();
    // A lookalike host is shown as where it goes (punycode); a link with a user before the host is not clickable.
    await openChat(b, a);
    const bubble = messages(b, 'in').first();
    await bubble.waitFor();
    const links = await bubble.getByTestId('message-link').evaluateAll((els) => els.map((e) => ({ text: e.textContent, host: (e as HTMLAnchorElement).host })));
    assert.deepEqual(links, [{ text: 'https://xn--pple-43d.com/billing', host: 'xn--pple-43d.com' }]);
    assert.equal(await bubble.getByTestId('message-link-unsafe').count(), 1);
    assertNoProblems(a, b);
  });

  test('the same user in two tabs sees one consistent conversation', { timeout: 60_000 }, async () => {
    const a1 = await openDemo(uniq('amy'));
    const a2 = await openDemo(a1.name, a1.context); // a second tab of the same browser
    const b = await openDemo(uniq('bill'));
    assert.notEqual(a1.sent[0]?.deviceId, a2.sent[0]?.deviceId, 'one device per tab');
    await openChat(a1, b);
    await say(a1, 'from tab 1');
    await sentBubbles(a1).first().waitFor();
    // Tab 2 gets its own copy: the conversation appears there, sent by "you".
    await a2.page.locator('[data-testid="conversation"]').first().click();
    await messages(a2, 'out').filter({ hasText: 'from tab 1' }).waitFor();
    await openChat(b, a1);
    await say(b, 'reply to both');
    for (const t of [a1, a2]) await messages(t, 'in').filter({ hasText: 'reply to both' }).waitFor();
    await say(a2, 'from tab 2');
    await messages(a1, 'out').filter({ hasText: 'from tab 2' }).waitFor();
    await sentBubbles(a2).filter({ hasText: 'from tab 2' }).waitFor();
    const expected = ['out from tab 1', 'in reply to both', 'out from tab 2'];
    await waitFor(async () => (await transcript(a1)).length === 3 && (await transcript(a2)).length === 3, STEP_MS, 'three messages in each tab');
    assert.deepEqual(await transcript(a1), expected);
    assert.deepEqual(await transcript(a2), expected);
    assert.deepEqual(await transcript(b), ['in from tab 1', 'out reply to both', 'in from tab 2']);
    assertNoProblems(a1, a2, b);
  });

  test('offline messages arrive on reconnect, each once, in order', { timeout: 60_000 }, async () => {
    const [a, b] = [await openDemo(uniq('ada')), await openDemo(uniq('bo'))];
    await openChat(a, b);
    await openChat(b, a);
    await say(a, 'first');
    await messages(b, 'in').filter({ hasText: 'first' }).waitFor();
    await b.page.getByTestId('offline-button').click();
    await b.page.locator('[data-testid="connection-state"][data-state="closed"]').waitFor();
    for (const text of ['while you were away 1', 'while you were away 2', 'while you were away 3']) await say(a, text);
    await sentBubbles(a).nth(3).waitFor();
    const authsBefore = b.sent.filter((f) => f.type === 'auth').length;
    await b.page.getByTestId('connect-button').click();
    await b.page.locator('[data-testid="connection-state"][data-state="open"]').waitFor();
    await messages(b, 'in').nth(3).waitFor();
    const resume = b.sent.filter((f) => f.type === 'auth')[authsBefore];
    assert.equal(typeof resume?.after, 'number', 'resumes after its stored position');
    assert.deepEqual(await transcript(b), ['in first', 'in while you were away 1', 'in while you were away 2', 'in while you were away 3']);
    const ids = await messages(b).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    assertNoProblems(a, b);
  });

  test('XSS payloads are shown as text and run nothing; Trusted Types stop any HTML sink', { timeout: 60_000 }, async () => {
    const [a, b] = [await openDemo(uniq('eve')), await openDemo(uniq('vic'))];
    await openChat(a, b);
    await openChat(b, a);
    const payload =
      '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b onclick="window.__pwned=3">bold</b>' +
      '<svg onload="window.__pwned=4"> <b>really bold</b> javascript:window.__pwned=5 https://example.com/ok ' +
      '<i onmouseover="alert(1)">x</i> <a href="javascript:alert(2)">link</a>';
    await say(a, payload);
    const msg = messages(b, 'in').first();
    await msg.waitFor();
    await sentBubbles(a).first().waitFor();
    const list = b.page.getByTestId('messages');
    await b.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 200))));
    for (const t of [a, b]) assert.equal(await t.page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
    for (const tag of ['img', 'script', 'svg', 'iframe', 'object', 'embed', 'style']) assert.equal(await list.locator(tag).count(), 0, `<${tag}> in the list`);
    const bolds = msg.getByTestId('message-content').locator('b');
    assert.equal(await bolds.count(), 1);
    assert.equal(await bolds.first().textContent(), 'really bold');
    const attrs = await msg.getByTestId('message-content').evaluate((el) => [...el.querySelectorAll('*')].map((e) => `${e.tagName}:${e.attributes.length}`));
    assert.deepEqual(attrs, ['B:0']);
    assert.match((await msg.getByTestId('message-content').textContent()) ?? '', /<script>window.__pwned=2<\/script>/);
    const anchors = await list.locator('a').evaluateAll((els) => els.map((e) => ({ href: e.getAttribute('href'), rel: e.getAttribute('rel'), target: e.getAttribute('target') })));
    assert.deepEqual(anchors, [{ href: 'https://example.com/ok', rel: 'noopener noreferrer', target: '_blank' }]);
    assert.deepEqual(await msg.getByTestId('message-link-unsafe').allTextContents(), ['javascript:window.__pwned=5']);
    // The sender's own copy, built locally from the raw text, has the same inert structure.
    assert.equal(await sentBubbles(a).first().getByTestId('message-content').innerHTML(), await msg.getByTestId('message-content').innerHTML());
    await msg.hover();
    await msg.getByTestId('message-content').click();
    assert.equal(await b.page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
    assertNoProblems(a, b);
    // Any code that tried an HTML sink would be stopped, and the violation reported.
    const outcome = await b.page.evaluate(() => {
      try {
        document.getElementById('messages')!.innerHTML = '<img src=x onerror="window.__pwned=6">';
        return 'assigned';
      } catch (e) {
        return (e as Error).name;
      }
    });
    assert.equal(outcome, 'TypeError');
    await waitFor(() => b.problems.some((p) => p.startsWith('CSP violation: require-trusted-types-for')), STEP_MS, 'the Trusted Types violation report');
    assert.equal(await b.page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
    assert.equal(await list.locator('img').count(), 0);
  });

  test('the page and the SDK contain no HTML sink, eval, inline code or inline style', async () => {
    assert.ok(srv);
    const html = await (await fetch(`${srv.httpUrl}/`)).text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
    for (const path of ['/demo.js', '/demo-render.js', '/client/rampart-client.js', '/client/index.js']) {
      const code = await (await fetch(`${srv.httpUrl}${path}`)).text();
      for (const sink of [/\.innerHTML\s*=/, /\.outerHTML\s*=/, /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function/, /createContextualFragment/]) {
        assert.doesNotMatch(code, sink, `${path}: ${sink}`);
      }
    }
  });

  test('a page on another origin can neither open a socket nor get a token', { timeout: 60_000 }, async () => {
    assert.ok(srv);
    const rampart = srv;
    foreign = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>evil</title><script>
        window.result = { events: [] };
        fetch(${JSON.stringify(`${rampart.httpUrl}/dev/token?name=victim`)}, { credentials: 'include' })
          .then((r) => r.text()).then((t) => { result.token = t; }, (e) => { result.fetch = e.name; });
        const ws = new WebSocket(${JSON.stringify(rampart.url)});
        ws.onopen = () => { result.events.push('open'); ws.send('{"type":"auth","token":"stolen"}'); };
        ws.onerror = () => result.events.push('error');
        ws.onclose = (e) => { result.events.push('close:' + e.code); result.done = true; };
      </script>`);
    });
    await new Promise<void>((r) => foreign?.listen(0, '127.0.0.1', r));
    const foreignPort = (foreign.address() as AddressInfo).port;
    const before = rampart.logs.length;
    const page = await (await newContext()).newPage();
    await page.goto(`http://127.0.0.1:${foreignPort}/`);
    await page.waitForFunction(() => { const r = (window as unknown as { result: { done?: boolean; fetch?: string; token?: string } }).result; return r.done === true && (r.fetch !== undefined || r.token !== undefined); }, undefined, { timeout: STEP_MS });
    const result = await page.evaluate(() => (window as unknown as { result: { events: string[]; fetch?: string; token?: string } }).result);
    assert.deepEqual(result.events, ['error', 'close:1006']);
    assert.equal(result.token, undefined, 'the token response is not readable cross-origin');
    assert.equal(result.fetch, 'TypeError');
    await waitFor(() => rampart.logs.slice(before).some((l) => l.includes('"event":"security"')), STEP_MS, 'a security event');
    const refusals = rampart.logs.slice(before).map((l) => JSON.parse(l) as { event?: string; reason?: string; code?: number }).filter((l) => l.event === 'security');
    assert.ok(refusals.some((r) => r.reason === 'origin_not_allowed' && r.code === 403), JSON.stringify(refusals));
    // What the server answers such requests (the browser hid it from the page): 403.
    const port = rampart.port;
    assert.equal(await httpGet(port, '/dev/token?name=victim', { 'sec-fetch-site': 'same-site', origin: `http://127.0.0.1:${foreignPort}` }), 403);
    assert.equal(await httpGet(port, '/dev/token?name=victim', { 'sec-fetch-site': 'cross-site' }), 403);
    assert.equal(await httpGet(port, '/dev/token?name=victim', { host: 'rebound.example.com' }), 403, 'DNS rebinding: a foreign Host name');
    assert.equal(await httpGet(port, '/dev/token?name=victim', { 'sec-fetch-site': 'same-origin', origin: `http://127.0.0.1:${port}` }), 200);
    assert.equal(await httpGet(port, '/dev/token?name=%3Cscript%3E', {}), 400);
  });

  test('signing out and in as someone else in the same tab shows nothing of the previous user (a shared browser)', { timeout: 60_000 }, async () => {
    const alice = await openDemo('shared-alice');
    const bob = await openDemo('shared-bob');
    await openChat(alice, bob);
    await say(alice, 'alice private secret');
    await sentBubbles(alice).first().waitFor();
    const p = alice.page;
    await p.getByTestId('message-input').fill('an unsent draft of alice');
    // What alice typed into the other forms: a token of hers, a group she was making.
    const pasted = await p.evaluate(async () => ((await (await fetch('/dev/token?name=shared-alice')).json()) as { token: string }).token);
    // The token field sits in a collapsed section: set as if it had been opened and pasted into.
    await p.getByTestId('token-input').evaluate((el, value) => ((el as HTMLInputElement).value = value), pasted);
    await p.getByTestId('group-name-input').fill('alice private group');
    await p.getByTestId('group-members-input').fill('shared-bob');
    await p.getByTestId('connect-button').click(); // Sign out
    await p.locator('[data-testid="connection-state"][data-state="closed"]').waitFor();
    await p.getByTestId('name-input').fill('shared-carol');
    await p.getByTestId('connect-button').click();
    await p.getByTestId('own-id').filter({ hasText: demoUserId('shared-carol') }).waitFor();
    const shown = {
      conversations: await p.locator('[data-testid="conversation"]').count(),
      messages: await messages(alice).count(),
      title: await p.getByTestId('conversation-title').textContent(),
      composer: await p.getByTestId('message-input').isDisabled(),
      draft: await p.getByTestId('message-input').inputValue(),
      peer: await p.getByTestId('peer-input').inputValue(),
      token: await p.getByTestId('token-input').inputValue(),
      group: [await p.getByTestId('group-name-input').inputValue(), await p.getByTestId('group-members-input').inputValue()],
    };
    assert.deepEqual(shown, { conversations: 0, messages: 0, title: 'No conversation open', composer: true, draft: '', peer: '', token: '', group: ['', ''] });
    assertNoProblems(alice, bob);
  });

  test('a double click on "Sign in" makes one client: after "Sign out" no socket is left open', { timeout: 60_000 }, async () => {
    assert.ok(srv);
    const page = await (await newContext()).newPage();
    const sockets: Array<{ isClosed(): boolean }> = [];
    page.on('websocket', (ws) => sockets.push(ws));
    await page.goto(`${srv.httpUrl}/`);
    await page.getByTestId('name-input').fill('double-click');
    await page.getByTestId('connect-button').dblclick();
    await page.locator('[data-testid="connection-state"][data-state="open"]').waitFor();
    await page.getByTestId('connect-button').click(); // Sign out
    await page.locator('[data-testid="connection-state"][data-state="closed"]').waitFor();
    await waitFor(() => sockets.every((ws) => ws.isClosed()), STEP_MS, 'every socket closed after signing out');
    assert.equal(sockets.length, 1, 'one socket for one sign-in');
  });

  test('screenshot of a short conversation (docs/demo.png)', { timeout: 60_000 }, async () => {
    const alice = await openDemo('alice');
    const bob = await openDemo('bob');
    await openChat(alice, bob);
    await openChat(bob, alice);
    await say(alice, 'Hi Bob! Did you see the <b>release notes</b>? https://example.com/rampart/releases');
    await messages(bob, 'in').nth(0).waitFor();
    await say(bob, 'Yes! <code>npm test</code> is green, and the demo passed the <em>XSS</em> checks: https://example.com/ci/builds/42');
    await messages(alice, 'in').nth(0).waitFor();
    await say(alice, 'Great, <strong>shipping</strong> it todya.');
    await say(alice, 'wrong chat, sorry');
    await sentBubbles(alice).nth(2).waitFor();
    // An edit, a deletion (tombstone), read ticks and the online line are all in the picture.
    await sentBubbles(alice).nth(1).getByTestId('edit-button').click();
    await alice.page.getByTestId('message-input').fill('Great, <strong>shipping</strong> it today.');
    await alice.page.getByTestId('send-button').click();
    await bob.page.locator('[data-testid="message"][data-edited="true"]').waitFor();
    await sentBubbles(alice).nth(2).getByTestId('delete-button').click();
    await sentBubbles(alice).nth(2).getByTestId('delete-button').click();
    await bob.page.locator('[data-testid="message"][data-deleted="true"]').waitFor();
    await alice.page.locator('[data-testid="message"][data-deleted="true"]').waitFor();
    await alice.page.getByTestId('group-name-input').fill('Release');
    await alice.page.getByTestId('group-members-input').fill('bob');
    await alice.page.getByTestId('create-group-button').click();
    await alice.page.locator('[data-testid="conversation"]').nth(1).waitFor();
    await alice.page.locator('[data-testid="conversation"]').filter({ hasText: 'bob' }).click();
    await alice.page.getByTestId('presence').filter({ hasText: 'bob online' }).waitFor();
    await sentBubbles(alice).nth(1).locator('[data-testid="ticks"][data-receipt="read"]').waitFor();
    await bob.page.getByTestId('message-input').pressSequentially('👍');
    await alice.page.getByTestId('typing-indicator').filter({ hasText: 'is typing' }).waitFor();
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await alice.page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(existsSync(SCREENSHOT));
    assertNoProblems(alice, bob);
  });
});
