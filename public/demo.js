// The demo chat, built on the client SDK (rampart/client, served as ES modules in development).
// No inline code and no HTML strings: the page's CSP forbids both and enforces Trusted Types.
import { RampartClient, WebStorageSyncStore } from '/client/index.js';
import { renderMessage, setTicks, showBody, showTombstone, short, sourceOf, time, unescapeText } from '/demo-render.js';

const $ = (id) => document.getElementById(id);
const q = (sel) => document.querySelector(sel);
const ui = {
  name: $('name'), token: $('token'), connect: $('connect'), offline: $('offline'), status: $('status'), me: q('[data-testid="own-id"]'),
  badge: q('[data-testid="connection-state"]'), convs: $('conversations'), peer: $('peer'), title: $('conversation-title'),
  history: $('history'), list: $('messages'), typing: $('typing'), message: $('message'), send: $('send'),
  groupName: $('group-name'), groupMembers: $('group-members'), presence: $('presence'), cancelEdit: $('cancel-edit'),
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WS_URL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const TYPING_EVERY_MS = 2000, TYPING_IDLE_MS = 3000, TYPING_SHOW_MS = 6000, READ_DELAY_MS = 300;

let client = null;
let me = null;
/** conversationId → { info, items: Map<id, message>, title } */
const conversations = new Map();
/** The open conversation: { conversationId } or, before the first message, { peerId }. */
let current = null;
const pendingEls = new Map(); // clientMsgId → <li>
let typingSentAt = 0, typingIdleTimer = 0, typingShowTimer = 0, readTimer = 0;
const names = new Map(); // userId → display name (the names we resolved)
const online = new Set(); // users shown online (presence replies and presence events)
let editing = null; // { messageId } while the composer edits one of our messages

function setStatus(text, bad = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('bad', bad);
}
const label = (userId) => (userId === me ? 'you' : names.get(userId) ?? short(userId));

function setEnabled() {
  const open = client !== null && client.state === 'open';
  const signedIn = client !== null;
  for (const el of document.querySelectorAll('[data-testid="open-chat-button"], [data-testid="create-group-button"]')) el.disabled = !open;
  ui.message.disabled = ui.send.disabled = !(signedIn && current);
  ui.cancelEdit.hidden = editing === null;
  ui.send.textContent = editing ? 'Save' : 'Send';
  ui.history.disabled = !(open && current?.conversationId);
  ui.offline.disabled = !signedIn;
  ui.connect.textContent = signedIn ? 'Sign out' : 'Sign in';
  ui.name.disabled = signedIn;
}

// ── signing in ───────────────────────────────────────────────────────────────────────────────
async function devToken(name) {
  const res = await fetch(`/dev/token?name=${encodeURIComponent(name)}`, { credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return res.json();
}

/** Whose conversations the page shows (kept across "Go offline", so signing back in shows the catch-up). */
let shownFor = null;
/** A sign-in waiting for its token: a second submit meanwhile (a double click) must not make a second client. */
let signingIn = false;

/** Forgets what the page shows of the last user: the next one must not see it. */
function clearPage() {
  conversations.clear();
  pendingEls.clear();
  names.clear();
  current = null;
  ui.list.replaceChildren();
  ui.title.textContent = 'No conversation open';
  ui.message.value = '';
  ui.peer.value = '';
  ui.token.value = ''; // a pasted token would sign the next person in as its user
  ui.groupName.value = '';
  ui.groupMembers.value = '';
  clearTyping();
  clearTimeout(typingIdleTimer);
  clearTimeout(readTimer);
  renderConversations();
}

async function signIn() {
  if (signingIn) return;
  signingIn = true;
  try {
    await connectAs();
  } finally {
    signingIn = false;
  }
}

async function connectAs() {
  const name = ui.name.value.trim();
  const pasted = ui.token.value.trim();
  if (!pasted && !/^[A-Za-z0-9_-]{1,32}$/.test(name)) { setStatus('Enter a name (letters, digits, _ or -).', true); return; }
  let userId = null;
  let token;
  try {
    if (pasted) token = pasted;
    else {
      const first = await devToken(name);
      userId = first.userId;
      let fresh = first.token;
      // The SDK asks for a token on every connect and before expiry: the first is used once.
      token = async () => {
        if (fresh) { const t = fresh; fresh = null; return t; }
        return (await devToken(name)).token;
      };
    }
  } catch (err) {
    setStatus(`Cannot get a token: ${err.message}.`, true);
    return;
  }
  const who = userId ?? `token:${pasted}`;
  if (who !== shownFor) clearPage();
  shownFor = who;
  if (userId) names.set(userId, name);
  // One device per tab: sessionStorage keeps this tab's device id and position across reloads.
  const store = new WebStorageSyncStore(sessionStorage, `rampart-demo:${userId ?? 'token'}`);
  client = new RampartClient({ url: WS_URL, token, store });
  wire(client);
  setEnabled();
  setStatus('Connecting…');
  client.connect().catch(() => {});
}

/** `keepPage`: going offline, the same user signs back in (anyone else gets a clean page). */
function signOut(keepPage = false) {
  if (!keepPage) {
    clearPage();
    shownFor = null;
  }
  client?.close();
  client = null;
  me = null;
  online.clear();
  stopEditing();
  renderPresence();
  ui.me.textContent = 'not connected';
  setBadge('closed');
  setEnabled();
}

function setBadge(state) {
  ui.badge.dataset.state = state;
  ui.badge.textContent = state;
}

function wire(c) {
  c.on('state', ({ state }) => { setBadge(state); setEnabled(); });
  c.on('ready', async ({ userId, reconnect }) => {
    me = userId;
    ui.me.textContent = `you are ${names.get(userId) ?? 'signed in'} · ${userId}`;
    ui.me.title = userId;
    setStatus(reconnect ? 'Reconnected: caught up.' : 'Connected.');
    setEnabled();
    await refreshConversations();
    if (current?.conversationId) void refreshPresence(current.conversationId); // changes while away were missed
  });
  c.on('message', (m) => onMessage(m));
  c.on('membership', (e) => onMembership(e));
  c.on('edited', (e) => onEdited(e));
  c.on('deleted', (d) => onDeleted(d));
  c.on('receipt', (r) => onReceipt(r));
  c.on('read', (r) => onOwnRead(r));
  c.on('presence', ({ userId, online: isOnline }) => {
    if (isOnline) online.add(userId);
    else online.delete(userId);
    renderPresence();
    renderConversations();
  });
  c.on('typing', (t) => onTyping(t));
  c.on('pruned', () => setStatus('Some old events expired; open a conversation to load its history.'));
  // The server's bus lost frames: receipts, read positions and presence may be stale.
  c.on('resync', async () => {
    await refreshConversations();
    if (current?.conversationId) void refreshPresence(current.conversationId);
  });
  c.on('disconnected', ({ code, reason, retryInMs }) => {
    if (retryInMs !== undefined) setStatus(`Disconnected (${code}${reason ? ` ${reason}` : ''}); reconnecting in ${Math.ceil(retryInMs / 100) / 10} s…`, true);
  });
  c.on('closed', ({ reason, permanent }) => {
    if (permanent) {
      setStatus(`Stopped: ${reason}. Not reconnecting.`, true);
      client = null;
      setEnabled();
    }
  });
  c.on('error', ({ reason }) => setStatus(`Error: ${reason}.`, true));
}

// ── conversations ────────────────────────────────────────────────────────────────────────────
function conv(conversationId) {
  let c = conversations.get(conversationId);
  if (!c) conversations.set(conversationId, (c = { info: null, items: new Map(), unread: 0, loaded: false, members: new Set(), receipts: new Map(), receiptsMin: null }));
  return c;
}

// ── receipts: ✓ sent, ✓✓ delivered (a device of every other member has it), blue ✓✓ read ──
function mergeReceipt(c, userId, { delivered, read }) {
  const r = c.receipts.get(userId) ?? { delivered: 0, read: 0 };
  if (delivered !== undefined) r.delivered = Math.max(r.delivered, delivered);
  if (read !== undefined) r.read = Math.max(r.read, read);
  r.delivered = Math.max(r.delivered, r.read); // read implies delivered
  c.receipts.set(userId, r);
  c.members.add(userId);
}

/** The server's receipt positions (list_conversations, history): the minimum, and each member when few. */
function applyReceiptsInfo(c, info) {
  if (!info) return;
  c.receiptsMin = { delivered: info.delivered, read: info.read };
  for (const m of info.members ?? []) mergeReceipt(c, m.userId, m);
}

/** Positions every other member has reached. */
function othersReached(c) {
  const others = c.info ? c.info.memberCount - 1 : c.receipts.size;
  if (c.receipts.size > 0 && c.receipts.size >= others) {
    const all = [...c.receipts.values()];
    return { delivered: Math.min(...all.map((r) => r.delivered)), read: Math.min(...all.map((r) => r.read)) };
  }
  return c.receiptsMin ?? { delivered: 0, read: 0 };
}

function updateTicks() {
  const id = current?.conversationId;
  if (!id) return;
  const reached = othersReached(conv(id));
  for (const li of ui.list.querySelectorAll('[data-testid="message"][data-direction="out"][data-state="sent"]')) {
    const seq = Number(li.dataset.seq);
    setTicks(li, reached.read >= seq ? 'read' : reached.delivered >= seq ? 'delivered' : 'sent');
  }
}

function onReceipt(r) {
  mergeReceipt(conv(r.conversationId), r.userId, r);
  if (current?.conversationId === r.conversationId) updateTicks();
}

/** Our own read position moved (this tab or another of ours): the unread count follows. */
function onOwnRead({ conversationId, readSeq }) {
  const c = conv(conversationId);
  c.readSeq = Math.max(c.readSeq ?? 0, readSeq);
  if (readSeq >= (c.info?.lastSeq ?? 0)) c.unread = 0;
  renderConversations();
}

// ── presence: who of the conversation is online ──
async function refreshPresence(conversationId) {
  if (!client) return;
  try {
    const reply = await client.getPresence(conversationId);
    const c = conv(conversationId);
    for (const u of c.members) if (!reply.online.includes(u)) online.delete(u);
    for (const u of reply.online) { online.add(u); c.members.add(u); }
    renderPresence();
    renderConversations();
  } catch { /* shown again on the next change */ }
}

function renderPresence() {
  const id = current?.conversationId;
  const c = id ? conversations.get(id) : undefined;
  if (!c || !me) { ui.presence.textContent = ''; ui.presence.dataset.online = ''; return; }
  const here = [...c.members].filter((u) => u !== me && online.has(u));
  ui.presence.dataset.online = here.join(',');
  ui.presence.textContent = here.length > 0 ? `● ${here.map(label).join(', ')} online` : '○ nobody else online';
  ui.presence.classList.toggle('on', here.length > 0);
}

function convTitle(c, conversationId) {
  const info = c.info;
  if (!info) return short(conversationId);
  if (info.kind === 'group') return `# ${info.name === undefined ? 'group' : unescapeText(info.name)}`;
  return info.peerId ? label(info.peerId) : 'notes to self';
}

async function refreshConversations() {
  if (!client) return;
  try {
    const reply = await client.listConversations({ limit: 50 });
    for (const info of reply.conversations) {
      const c = conv(info.conversationId);
      c.info = info;
      if (info.peerId) c.members.add(info.peerId);
      applyReceiptsInfo(c, info.receipts);
      if (current?.conversationId !== info.conversationId) c.unread = info.unreadCount;
    }
    renderConversations();
    updateTicks();
    renderPresence();
  } catch (err) {
    setStatus(`Could not list conversations: ${err.reason ?? err.message}.`, true);
  }
}

function renderConversations() {
  const rows = [...conversations.entries()].sort((a, b) => (b[1].info?.lastActivityAt ?? 0) - (a[1].info?.lastActivityAt ?? 0));
  const items = rows.map(([id, c]) => {
    const li = document.createElement('li');
    li.className = 'conv';
    li.dataset.testid = 'conversation';
    li.dataset.conversationId = id;
    li.dataset.unread = String(c.unread);
    li.setAttribute('aria-current', String(current?.conversationId === id));
    li.tabIndex = 0;
    const name = document.createElement('span');
    name.textContent = convTitle(c, id);
    const peer = c.info?.peerId;
    if (peer && online.has(peer)) {
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.dataset.testid = 'online-dot';
      dot.title = 'online';
      name.prepend(dot);
    }
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.dataset.testid = 'unread';
    badge.textContent = c.unread > 0 ? String(c.unread) : '';
    li.append(name, badge);
    li.addEventListener('click', () => openConversation({ conversationId: id }));
    li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') openConversation({ conversationId: id }); });
    return li;
  });
  ui.convs.replaceChildren(...items);
}

async function openConversation(target) {
  current = target;
  ui.typing.textContent = '';
  ui.list.replaceChildren();
  pendingEls.clear();
  stopEditing();
  renderPresence();
  if (target.conversationId) {
    const c = conv(target.conversationId);
    c.unread = 0;
    ui.title.textContent = convTitle(c, target.conversationId);
    for (const m of [...c.items.values()].sort((a, b) => a.seq - b.seq)) insertItem(m);
    void refreshPresence(target.conversationId);
    if (!c.loaded) await loadHistory(target.conversationId);
    updateTicks();
    scheduleRead();
  } else {
    // No conversation yet: it is created by the first message.
    const existing = [...conversations.entries()].find(([, c]) => c.info?.peerId === target.peerId);
    if (existing) return openConversation({ conversationId: existing[0] });
    ui.title.textContent = label(target.peerId);
  }
  renderConversations();
  setEnabled();
}

async function loadHistory(conversationId, beforeSeq) {
  const c = conv(conversationId);
  try {
    const reply = await client.history({ conversationId, limit: 50, ...(beforeSeq ? { beforeSeq } : {}) });
    c.loaded = true;
    applyReceiptsInfo(c, reply.receipts);
    for (const item of reply.messages) {
      if (c.items.has(item.id)) continue;
      c.items.set(item.id, item);
      if (item.senderId) c.members.add(item.senderId);
      if (current?.conversationId === conversationId) insertItem(item);
    }
    updateTicks();
    if (beforeSeq && reply.messages.length === 0) setStatus('No earlier messages.');
  } catch (err) {
    setStatus(`History failed: ${err.reason ?? err.message}.`, true);
  }
}

/** Places one event (chat message or membership) in the open list, ordered by seq. */
function insertItem(item) {
  if (ui.list.querySelector(`[data-id="${CSS.escape(item.id)}"]`)) return;
  const membership = item.type === 'membership' || item.action;
  const el = membership ? renderMembership(item) : renderMessage(item, { direction: item.senderId === me ? 'out' : 'in', state: 'sent', who: label(item.senderId) });
  if (!membership && item.senderId === me && item.deletedAt === undefined) addActions(el);
  if (item.deletedAt !== undefined && item.deletedBy && item.deletedBy !== item.senderId) showTombstone(el, item, label(item.deletedBy));
  el.dataset.id = item.id;
  el.dataset.seq = String(item.seq);
  const after = [...ui.list.children].find((n) => n.dataset.seq !== undefined && Number(n.dataset.seq) > item.seq) ?? [...ui.list.children].find((n) => n.dataset.state === 'pending');
  ui.list.insertBefore(el, after ?? null);
  ui.list.scrollTop = ui.list.scrollHeight;
  if (!membership && item.senderId === me) updateTicks();
}

// ── edit and delete (our own messages) ──
function addActions(li) {
  if (li.querySelector('.actions')) return;
  const box = document.createElement('div');
  box.className = 'actions';
  const edit = document.createElement('button');
  edit.type = 'button';
  edit.className = 'link';
  edit.dataset.testid = 'edit-button';
  edit.textContent = 'Edit';
  edit.addEventListener('click', () => startEditing(li));
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'link';
  del.dataset.testid = 'delete-button';
  del.textContent = 'Delete';
  let disarm = 0;
  // Two clicks, no dialog: the first arms the button for a few seconds.
  del.addEventListener('click', () => {
    if (del.dataset.armed !== 'true') {
      del.dataset.armed = 'true';
      del.textContent = 'Delete for everyone?';
      disarm = setTimeout(() => { delete del.dataset.armed; del.textContent = 'Delete'; }, 4000);
      return;
    }
    clearTimeout(disarm);
    del.disabled = true;
    const id = li.dataset.id;
    client?.deleteMessage(id).catch((err) => { del.disabled = false; setStatus(`Could not delete: ${err.reason ?? err.message}.`, true); });
  });
  box.append(edit, del);
  li.append(box);
}

function startEditing(li) {
  editing = { messageId: li.dataset.id };
  ui.message.value = sourceOf(li.querySelector('.content'));
  ui.message.focus();
  setEnabled();
}

function stopEditing() {
  if (!editing) return;
  editing = null;
  ui.message.value = '';
  setEnabled();
}

function bubble(id) {
  return ui.list.querySelector(`[data-testid="message"][data-id="${CSS.escape(id)}"]`);
}

function onEdited(e) {
  // `content: ""`: the message was deleted since (its delete event follows or came first).
  if (e.content === '') return;
  const body = { content: e.content, mentions: e.mentions, hashtags: e.hashtags, links: e.links, editedAt: e.editedAt };
  const item = conv(e.conversationId).items.get(e.messageId);
  if (item && item.deletedAt === undefined) Object.assign(item, body);
  // Our own bubbles sent from this tab are not in `items` (they are read back from history later).
  const li = current?.conversationId === e.conversationId ? bubble(e.messageId) : null;
  if (li && li.dataset.deleted !== 'true') showBody(li, body);
}

function onDeleted(d) {
  const item = conv(d.conversationId).items.get(d.messageId);
  if (item) Object.assign(item, { content: '', mentions: [], hashtags: [], links: [], attachments: undefined, deletedAt: d.deletedAt, deletedBy: d.actorId });
  if (editing?.messageId === d.messageId) stopEditing();
  const li = current?.conversationId === d.conversationId ? bubble(d.messageId) : null;
  if (!li) return;
  const senderId = item?.senderId ?? (li.dataset.direction === 'out' ? me : undefined);
  showTombstone(li, { deletedAt: d.deletedAt }, d.actorId !== senderId ? label(d.actorId) : '');
}

function renderMembership(e) {
  const li = document.createElement('li');
  li.className = 'event';
  li.dataset.testid = 'event';
  const who = e.userIds.map(label).join(', ');
  const text = {
    created: `${label(e.actorId)} created “${unescapeText(e.name ?? '')}” with ${who}`,
    added: `${label(e.actorId)} added ${who}`,
    removed: `${label(e.actorId)} removed ${who}`,
    left: `${who} left`,
    renamed: `${label(e.actorId)} renamed the group to “${unescapeText(e.name ?? '')}”`,
    role_changed: `${who} is now ${e.role}`,
  }[e.action] ?? e.action;
  li.textContent = `${text} · ${time(e.timestamp)}`;
  return li;
}

// ── live events ──────────────────────────────────────────────────────────────────────────────
function onMessage(m) {
  const c = conv(m.conversationId);
  c.items.set(m.id, m);
  c.members.add(m.senderId);
  if (m.recipientId) c.peerId = m.senderId === me ? m.recipientId : m.senderId;
  if (!c.info) void refreshConversations();
  else {
    c.info.lastActivityAt = m.timestamp;
    c.info.lastSeq = Math.max(c.info.lastSeq, m.seq);
  }
  if (current && (current.conversationId === m.conversationId || (!current.conversationId && (current.peerId === m.senderId || current.peerId === m.recipientId)))) {
    if (!current.conversationId) current = { conversationId: m.conversationId, peerId: current.peerId };
    insertItem(m);
    if (!m.own) clearTyping();
    scheduleRead();
  } else if (!m.own) c.unread++;
  renderConversations();
}

function onMembership(e) {
  const c = conv(e.conversationId);
  c.items.set(e.id, { ...e, type: 'membership' });
  for (const u of e.userIds) {
    if (e.action === 'removed' || e.action === 'left') c.members.delete(u);
    else c.members.add(u);
  }
  void refreshConversations();
  if (current?.conversationId === e.conversationId) insertItem({ ...e, type: 'membership' });
}

function onTyping(t) {
  const c = current?.conversationId ? conversations.get(current.conversationId) : undefined;
  const peer = current?.peerId ?? c?.peerId ?? c?.info?.peerId;
  const here = current && (t.conversationId ? t.conversationId === current.conversationId : peer === t.senderId);
  if (!here) return;
  clearTimeout(typingShowTimer);
  ui.typing.textContent = t.isTyping ? `${label(t.senderId)} is typing…` : '';
  if (t.isTyping) typingShowTimer = setTimeout(clearTyping, TYPING_SHOW_MS);
}
function clearTyping() {
  clearTimeout(typingShowTimer);
  ui.typing.textContent = '';
}

/** Read receipt for the open conversation, shortly after its newest message is on screen. */
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const id = current?.conversationId;
    if (!id || !client) return;
    const c = conv(id);
    const last = Math.max(0, ...[...c.items.values()].map((m) => m.seq ?? 0));
    if (last === 0 || (c.readSeq ?? 0) >= last) return;
    try {
      const { readSeq } = await client.markRead(id, last);
      c.readSeq = readSeq;
      ui.list.dataset.readSeq = String(readSeq);
    } catch { /* retried with the next message */ }
  }, READ_DELAY_MS);
}

// ── sending ──────────────────────────────────────────────────────────────────────────────────
/** Where the composer sends: a conversation by its id (direct or group); a new direct chat by the peer's id. */
function target() {
  if (!current) return null;
  return current.conversationId ? { conversationId: current.conversationId } : { recipientId: current.peerId };
}

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const to = target();
  const text = ui.message.value;
  if (!to || !client || text.trim() === '') return;
  if (editing) {
    const { messageId } = editing;
    stopEditing();
    // The bubble changes when the `edited` event arrives (for every member and tab at once).
    client.editMessage(messageId, text).catch((err) => setStatus(`Could not edit: ${err.reason ?? err.message}.`, true));
    return;
  }
  stopTyping();
  const clientMsgId = `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const li = renderMessage({}, { direction: 'out', state: 'pending', raw: text, who: 'you' });
  li.dataset.clientMsgId = clientMsgId;
  pendingEls.set(clientMsgId, li);
  ui.list.append(li);
  ui.list.scrollTop = ui.list.scrollHeight;
  ui.message.value = '';
  client.sendMessage(to, text, { clientMsgId }).then(
    (receipt) => {
      pendingEls.delete(clientMsgId);
      if (current && !current.conversationId) {
        current = { conversationId: receipt.conversationId, peerId: current.peerId };
        conv(receipt.conversationId).members.add(current.peerId);
        void refreshConversations();
        void refreshPresence(receipt.conversationId);
      }
      // Our own copy may already be on screen (replayed after a reconnect): keep one.
      if (ui.list.querySelector(`[data-id="${CSS.escape(receipt.id)}"]`)) { li.remove(); return; }
      li.dataset.id = receipt.id;
      li.dataset.seq = String(receipt.seq);
      li.dataset.state = 'sent';
      li.querySelector('.state').textContent = `sent ${time(receipt.timestamp)}`;
      addActions(li);
      updateTicks();
      conv(receipt.conversationId).loaded = false; // reopening the conversation reads it back from history
    },
    (err) => {
      pendingEls.delete(clientMsgId);
      li.dataset.state = 'failed';
      li.querySelector('.state').textContent = `not sent: ${err.reason ?? err.message}`;
    },
  );
});

function stopTyping() {
  clearTimeout(typingIdleTimer);
  const to = target();
  if (typingSentAt && to && client) client.setTyping(to, false);
  typingSentAt = 0;
}

ui.message.addEventListener('input', () => {
  const to = target();
  if (!to || !client || editing) return;
  const now = Date.now();
  if (now - typingSentAt >= TYPING_EVERY_MS && client.setTyping(to, true)) typingSentAt = now;
  clearTimeout(typingIdleTimer);
  typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
});

// ── forms ────────────────────────────────────────────────────────────────────────────────────
async function resolveUser(nameOrId) {
  const v = nameOrId.trim();
  if (UUID.test(v)) return v.toLowerCase();
  const res = await fetch(`/dev/user?name=${encodeURIComponent(v)}`, { cache: 'no-store' });
  if (!res.ok) throw new Error(`unknown user “${v}”`);
  const { userId } = await res.json();
  names.set(userId, v);
  return userId;
}

$('connect-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (client) { signOut(); setStatus('Signed out.'); } else void signIn();
});

// Going offline keeps the tab's device and position: signing in again resumes after it.
ui.offline.addEventListener('click', () => { signOut(true); setStatus('Offline.'); });

$('chat-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const peerId = await resolveUser(ui.peer.value);
    await openConversation({ peerId });
  } catch (err) {
    setStatus(err.message, true);
  }
});

$('group-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = ui.groupName.value.trim();
  if (!name || !client) return;
  try {
    const members = await Promise.all(ui.groupMembers.value.split(',').map((s) => s.trim()).filter(Boolean).map(resolveUser));
    const reply = await client.createGroup(name, members);
    await refreshConversations();
    await openConversation({ conversationId: reply.conversationId });
    setStatus(`Group “${name}” created.`);
  } catch (err) {
    setStatus(`Could not create the group: ${err.reason ?? err.message}.`, true);
  }
});

ui.cancelEdit.addEventListener('click', stopEditing);
ui.message.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') stopEditing(); });

ui.history.addEventListener('click', () => {
  const id = current?.conversationId;
  if (!id) return;
  const oldest = Math.min(...[...conv(id).items.values()].map((m) => m.seq ?? Infinity));
  void loadHistory(id, Number.isFinite(oldest) ? oldest : undefined);
});

setEnabled();
