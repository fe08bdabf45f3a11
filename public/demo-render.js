// Rendering for the demo page: every node is made with createElement / text nodes. Nothing here
// assigns HTML strings (the page enforces Trusted Types, so it could not anyway).

const TAGS = new Set(['b', 'i', 'em', 'strong', 'code', 'pre']);
const MAX_DEPTH = 32;
const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" };

/**
 * Server content is sanitized HTML of a fixed subset: the tags above, without attributes, and
 * text with & < > " ' escaped. It is rebuilt here token by token; anything unexpected is text.
 */
const SANITIZED = /<(\/?)(b|i|em|strong|code|pre)>|&(amp|lt|gt|quot|#39);/g;
export function appendSanitized(parent, html) {
  const stack = [parent];
  let last = 0;
  let text = '';
  const flush = () => { if (text) stack[stack.length - 1].append(text); text = ''; };
  for (const m of html.matchAll(SANITIZED)) {
    text += html.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[3] !== undefined) { text += ENTITIES[m[3]]; continue; }
    flush();
    if (m[1]) {
      const i = stack.findLastIndex((el, k) => k > 0 && el.localName === m[2]);
      if (i > 0) stack.length = i;
    } else if (stack.length <= MAX_DEPTH) {
      const el = document.createElement(m[2]);
      stack[stack.length - 1].append(el);
      stack.push(el);
    }
  }
  text += html.slice(last);
  flush();
}

/**
 * Our own outgoing text, shown as the recipient will see it without ever parsing it as HTML:
 * exact allowlisted tags (optional whitespace before `>`) become elements, everything else text.
 */
const RAW_TAG = /<(\/?)(b|i|em|strong|code|pre)[\t\n\f\r ]*>/gi;
export function appendRaw(parent, text) {
  const stack = [parent];
  let last = 0;
  for (const m of text.matchAll(RAW_TAG)) {
    stack[stack.length - 1].append(text.slice(last, m.index));
    last = m.index + m[0].length;
    const name = m[2].toLowerCase();
    if (!TAGS.has(name)) continue;
    if (m[1]) {
      const i = stack.findLastIndex((el, k) => k > 0 && el.localName === name);
      if (i > 0) stack.length = i;
      else stack[stack.length - 1].append(m[0]); // nothing to close: text, as the server shows it
    } else if (stack.length <= MAX_DEPTH) {
      const el = document.createElement(name);
      stack[stack.length - 1].append(el);
      stack.push(el);
    } else stack[stack.length - 1].append(m[0]);
  }
  stack[stack.length - 1].append(text.slice(last));
}

/** A link from the server's `links`: an anchor only when it parses as http(s)/mailto, else plain text. */
export function renderLink(link) {
  const url = String(link.url);
  let safe = link.safe === true;
  if (safe) {
    try { safe = ['http:', 'https:', 'mailto:'].includes(new URL(url).protocol); } catch { safe = false; }
  }
  if (!safe) {
    const span = document.createElement('span');
    span.className = 'unsafe';
    span.dataset.testid = 'message-link-unsafe';
    span.title = 'not a safe link';
    span.textContent = url;
    return span;
  }
  const a = document.createElement('a');
  a.href = url;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.dataset.testid = 'message-link';
  // The text names where the link goes: the parsed URL, its host in punycode (a Cyrillic "а" in
  // "аpple.com" shows as xn--pple-43d.com, not as Apple).
  a.textContent = a.href;
  return a;
}

/** Text the server escaped for HTML (group names), back to what its author typed, for textContent. */
export function unescapeText(s) {
  return String(s).replace(/&(amp|lt|gt|quot|#39);/g, (_, e) => ENTITIES[e]);
}

/**
 * A bubble's sanitized content as the source its author would type: the allowlisted tags
 * written out, text as it reads (what the edit box starts from, so an edit keeps the formatting).
 */
export function sourceOf(node) {
  let out = '';
  for (const child of node.childNodes) {
    if (child.nodeType === 1 && TAGS.has(child.localName)) out += `<${child.localName}>${sourceOf(child)}</${child.localName}>`;
    else out += child.textContent;
  }
  return out;
}

export const short = (id) => String(id).slice(0, 8);
export const time = (ts) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** One message bubble. `m.content` is server-sanitized; `raw` is our own pending text. */
export function renderMessage(m, { direction, state, raw, who }) {
  const li = document.createElement('li');
  li.className = `msg ${direction}`;
  li.dataset.testid = 'message';
  li.dataset.direction = direction;
  li.dataset.state = state;
  if (m.id) li.dataset.id = m.id;
  if (m.seq !== undefined) li.dataset.seq = String(m.seq);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const whoEl = document.createElement('span');
  whoEl.textContent = who;
  const st = document.createElement('span');
  st.className = 'state';
  st.dataset.testid = 'message-state';
  st.textContent = state === 'pending' ? 'sending…' : time(m.timestamp);
  const edited = document.createElement('span');
  edited.className = 'edited';
  edited.dataset.testid = 'message-edited';
  meta.append(whoEl, st, edited);
  if (direction === 'out') {
    // Delivery state of our own message, from the other members' receipts: ✓ sent, ✓✓ delivered, blue ✓✓ read.
    const ticks = document.createElement('span');
    ticks.className = 'ticks';
    ticks.dataset.testid = 'ticks';
    meta.append(ticks);
  }
  const content = document.createElement('div');
  content.className = 'content';
  content.dataset.testid = 'message-content';
  li.append(meta, content);
  if (raw !== undefined) appendRaw(content, raw);
  else if (m.deletedAt !== undefined) showTombstone(li, m);
  else showBody(li, m);
  return li;
}

/** Sets (or replaces, after an edit) the bubble's sanitized body and its links. */
export function showBody(li, m) {
  const content = li.querySelector('.content');
  content.replaceChildren();
  appendSanitized(content, String(m.content));
  li.querySelector('.links')?.remove();
  const links = Array.isArray(m.links) ? m.links : [];
  if (links.length > 0) {
    const box = document.createElement('div');
    box.className = 'links';
    for (const link of links) box.append(renderLink(link));
    li.append(box);
  }
  if (m.editedAt !== undefined) {
    li.dataset.edited = 'true';
    li.querySelector('.edited').textContent = `edited ${time(m.editedAt)}`;
  }
}

/** A deleted message: what remains is who sent it, when, and who deleted it. */
export function showTombstone(li, m, by = '') {
  li.dataset.deleted = 'true';
  delete li.dataset.edited;
  li.querySelector('.edited').textContent = '';
  const content = li.querySelector('.content');
  content.classList.add('tombstone');
  content.replaceChildren(`message deleted${by ? ` by ${by}` : ''} · ${time(m.deletedAt)}`);
  li.querySelector('.links')?.remove();
  li.querySelector('.actions')?.remove();
}

const TICKS = { sent: '✓', delivered: '✓✓', read: '✓✓' };
/** `receipt`: 'sent' | 'delivered' | 'read'. */
export function setTicks(li, receipt) {
  const el = li.querySelector('.ticks');
  if (!el || li.dataset.receipt === receipt) return;
  li.dataset.receipt = receipt;
  el.dataset.receipt = receipt;
  el.textContent = TICKS[receipt];
  el.title = receipt;
}
