/**
 * The demo page (public/index.html + demo.js on the client SDK) in a real Chromium driven by
 * playwright-core, the conversations: two users chat, a group, typing, delivery and read ticks from
 * receipts, edits and deletes (tombstones), who is online, one user in two tabs. The page's safety
 * and sessions are in demo-safety.test.ts; the shared setup in test/helpers/demo-browser.ts.
 * Chromium is Debian's (/usr/bin/chromium); when it is missing the suite FAILS with the install
 * command (it is never skipped).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/harness.js';
import { STEP_MS, uniq, demoBrowser, openChat, say, messages, sentBubbles, transcript, assertNoProblems } from '../helpers/demo-browser.js';

describe('demo page on the client SDK, in Chromium: conversations', () => {
  const { newContext, openDemo } = demoBrowser();

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
});
