// Baseline WebSocket relays built on `ws`, run by plain `node` (no loader) like Rampart's dist/.
//
//   node bench/servers/ws-relay.mjs --port P --mode plain|cork|jwt|rampart-mock [--secret S --origin O]
//
// Every mode: the first frame is {"type":"auth",...} and is answered {"type":"auth_success"}, then
// a {"recipientId","content"} frame is parsed and forwarded to the recipient's socket as
// {"type":"chat_message","senderId","recipientId","content"}. Nothing else.
//  - plain: no verification at all (the client names its own userId in the auth frame), one
//    ws.send per message: the bare relay, the floor of any `ws` server;
//  - cork: plain, but each recipient socket is corked on its first write in an event-loop turn and
//    uncorked once at the end of the turn (setImmediate), so a turn's frames leave in one writev:
//    the ceiling of a Node relay;
//  - jwt: plain + Origin allowlist (403) + HS256 JWT verification with jose: the handshake cost of
//    an equivalent minimal authenticated server (used by the handshake scenario);
//  - rampart-mock: jwt + Rampart's wire shapes (message_sent to the sender, id/mentions/timestamp
//    on delivery). It is NOT Rampart: it only lets the harness be tested before Rampart runs.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { jwtVerify } from 'jose';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const port = Number(args.port);
const host = args.host ?? '127.0.0.1';
const mode = args.mode ?? 'plain';
const verify = mode === 'jwt' || mode === 'rampart-mock';
const key = new TextEncoder().encode(args.secret ?? '');
const origins = new Set((args.origin ?? '').split(',').filter(Boolean));

/** userId → socket */
const users = new Map();

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });

server.on('upgrade', (req, socket, head) => {
  if (verify && !origins.has(req.headers.origin)) {
    socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
});

let corked = [];
let flushScheduled = false;
function flush() {
  flushScheduled = false;
  const list = corked;
  corked = [];
  for (const s of list) {
    s.__corked = false;
    s.uncork();
  }
}
function sendTo(ws, data) {
  if (mode === 'cork') {
    const s = ws._socket;
    if (!s.__corked) {
      s.__corked = true;
      s.cork();
      corked.push(s);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    }
  }
  ws.send(data);
}

function onConnection(ws) {
  let userId = null;
  ws.on('error', () => {});
  ws.on('close', () => {
    if (userId && users.get(userId) === ws) users.delete(userId);
  });
  let authPending = false;
  const accept = (id) => {
    userId = id;
    users.set(userId, ws);
    ws.send(JSON.stringify({ type: 'auth_success', userId }));
  };
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (userId === null) {
      if (msg.type !== 'auth' || authPending) return;
      if (!verify) return accept(String(msg.userId));
      authPending = true;
      jwtVerify(String(msg.token), key, { algorithms: ['HS256'] }).then(
        ({ payload }) => accept(String(payload.sub)),
        () => {
          ws.send('{"type":"auth_failure","reason":"invalid_token"}');
          ws.close(4003);
        },
      );
      return;
    }
    if (typeof msg.recipientId !== 'string') return;
    const to = users.get(msg.recipientId);
    if (mode === 'rampart-mock') {
      if (msg.type !== 'chat_message') return;
      const id = randomUUID();
      const timestamp = Date.now();
      ws.send(JSON.stringify({ type: 'message_sent', id, clientMsgId: msg.clientMsgId, timestamp }));
      if (to)
        to.send(
          JSON.stringify({
            type: 'chat_message', id, senderId: userId, recipientId: msg.recipientId, content: msg.content,
            mentions: [], hashtags: [], links: [], timestamp,
          }),
        );
      return;
    }
    if (to) sendTo(to, JSON.stringify({ type: msg.type, senderId: userId, recipientId: msg.recipientId, content: msg.content }));
  });
}

server.listen(port, host, () => {
  console.log(`ws-relay (${mode}) listening on ${host}:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
