// Socket.IO baseline with an auth equivalent to Rampart's: Origin allowlist (allowRequest → 403),
// HS256 JWT verified with jose in an `io.use` middleware (token in the handshake `auth` payload),
// each socket joins the room named by its user id, and a `chat_message` / `typing_indicator` event
// {recipientId, content} is relayed to that room. WebSocket transport only (no long-polling).
//
//   node bench/servers/socketio-relay.mjs --port P --secret S --origin O
import http from 'node:http';
import { Server } from 'socket.io';
import { jwtVerify } from 'jose';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const port = Number(args.port);
const host = args.host ?? '127.0.0.1';
const key = new TextEncoder().encode(args.secret ?? '');
const origins = new Set((args.origin ?? '').split(',').filter(Boolean));

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  }
});

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  allowRequest: (req, cb) => cb(null, origins.has(req.headers.origin)),
});

io.use(async (socket, next) => {
  try {
    const token = socket.handshake.auth?.token;
    const { payload } = await jwtVerify(String(token), key, { algorithms: ['HS256'] });
    socket.data.userId = String(payload.sub);
    next();
  } catch {
    next(new Error('invalid_token'));
  }
});

io.on('connection', (socket) => {
  const userId = socket.data.userId;
  socket.join(userId);
  const relay = (type) => (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.recipientId !== 'string') return;
    io.to(msg.recipientId).emit(type, { senderId: userId, recipientId: msg.recipientId, content: msg.content, isTyping: msg.isTyping });
  };
  socket.on('chat_message', relay('chat_message'));
  socket.on('typing_indicator', relay('typing_indicator'));
});

server.listen(port, host, () => {
  console.log(`socketio-relay listening on ${host}:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
