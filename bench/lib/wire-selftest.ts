/**
 * Self-test of the raw client's frame parser: a fake server answers the upgrade and then sends
 * text frames of every length class (7-bit, 16-bit, 64-bit), a fragmented message and a ping,
 * cut into random-sized TCP writes (1 byte and up, headers split included). Every payload must
 * arrive intact and in order, and the ping must be answered with a masked pong.
 *
 *   node --import tsx bench/lib/wire-selftest.ts
 */
import net from 'node:net';
import { RawConn } from './wire.js';

function serverFrame(payload: Buffer, opcode = 1, fin = true): Buffer {
  const len = payload.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const h = Buffer.alloc(hl);
  h[0] = (fin ? 0x80 : 0) | opcode;
  if (len < 126) h[1] = len;
  else if (len < 65536) {
    h[1] = 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = 127;
    h.writeUInt32BE(0, 2);
    h.writeUInt32BE(len, 6);
  }
  return Buffer.concat([h, payload]);
}

const payloads: string[] = [];
for (const n of [1, 5, 125, 126, 127, 200, 65535, 65536, 70000, 3, 0]) payloads.push(`${n}:`.padEnd(n + `${n}:`.length, String.fromCharCode(97 + (n % 26))));
const frames: Buffer[] = payloads.map((p) => serverFrame(Buffer.from(p)));
// a fragmented message and a ping in between
frames.push(serverFrame(Buffer.from('frag-1|'), 1, false), serverFrame(Buffer.from('ping!'), 9), serverFrame(Buffer.from('frag-2'), 0, true));
const expected = [...payloads, 'frag-1|frag-2'];
const stream = Buffer.concat(frames);

let failures = 0;
for (let round = 0; round < 20; round++) {
  const got: string[] = [];
  let pong = '';
  const srv = net.createServer((sock) => {
    let req = '';
    sock.on('data', (d: Buffer) => {
      if (!req.includes('\r\n\r\n')) {
        req += d.toString('latin1');
        if (req.includes('\r\n\r\n')) void send(sock);
        return;
      }
      // client → server: the pong, masked
      const len = d[1]! & 0x7f;
      const key = d.subarray(2, 6);
      const body = Buffer.from(d.subarray(6, 6 + len)).map((b, i) => b ^ key[i & 3]!);
      if ((d[0]! & 0x0f) === 10) pong = Buffer.from(body).toString();
    });
  });
  async function send(sock: net.Socket): Promise<void> {
    const all = Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), stream]);
    let pos = 0;
    while (pos < all.length) {
      const n = Math.min(all.length - pos, 1 + Math.floor(Math.random() * (Math.random() < 0.5 ? 8 : 40000)));
      sock.write(all.subarray(pos, pos + n));
      pos += n;
      if (Math.random() < 0.3) await new Promise((r) => setTimeout(r, 1));
    }
  }
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 5000);
    const c = new RawConn({ host: '127.0.0.1', port, path: '/' }, {
      onOpen() {},
      onText(_c, buf, s, e) {
        got.push(buf.toString('utf8', s, e));
        if (got.length === expected.length) {
          clearTimeout(t);
          setTimeout(resolve, 50);
        }
      },
      onClose() {},
    });
    void c;
  });
  srv.close();
  const ok = got.length === expected.length && got.every((g, i) => g === expected[i]) && pong === 'ping!';
  if (!ok) {
    failures++;
    console.error(`round ${round}: got ${got.length}/${expected.length} messages, pong=${JSON.stringify(pong)}; first mismatch at ${got.findIndex((g, i) => g !== expected[i])}`);
  }
  srv.unref();
}
console.log(`${20 - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
