/**
 * The demo page (public/index.html + demo.js on the client SDK) in a real Chromium driven by
 * playwright-core, its safety and sessions: XSS payloads that stay inert under a CSP with Trusted
 * Types, no HTML sink in the page or the SDK, names, edits and links shown as their authors wrote
 * them (lookalike and user-before-host links), a page on another origin that can neither open a
 * socket nor get a token, offline messages arriving on reconnect, signing out and in as someone
 * else, a double click on "Sign in", and the screenshot in docs/demo.png. The conversations are in
 * demo.test.ts; the shared setup in test/helpers/demo-browser.ts. Chromium is Debian's
 * (/usr/bin/chromium); when it is missing the suite FAILS with the install command (it is never
 * skipped).
 */
import { dirname } from 'node:path';
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../helpers/harness.js';
import { demoUserId } from '../../src/server/dev-tokens.js';
import { SCREENSHOT, STEP_MS, uniq, demoBrowser, httpGet, openChat, say, messages, sentBubbles, transcript, assertNoProblems } from '../helpers/demo-browser.js';

describe('demo page on the client SDK, in Chromium: safety and sessions', () => {
  const demo = demoBrowser();
  const { newContext, openDemo } = demo;
  let foreign: HttpServer | undefined;

  after(async () => {
    if (foreign) await new Promise((r) => foreign?.close(r));
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
    const srv = demo.srv;
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
    const srv = demo.srv;
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
    const srv = demo.srv;
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
