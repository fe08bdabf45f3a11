/**
 * A minimal raw-TCP WebSocket client for the load generator: it does the HTTP upgrade itself,
 * sends pre-built masked text frames and parses server frames (unmasked text frames, partial
 * frames across chunks, fragments, ping/pong, close). No `ws`, no `Buffer.concat` per frame, no
 * string decoding unless the caller asks for it: the point is to cost ~1–3 µs per message, so the
 * generator is never the bottleneck.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';

export interface ConnOptions {
  host: string;
  port: number;
  path: string;
  origin?: string;
  localAddress?: string;
}

export interface ConnHandlers {
  /** The server answered 101. */
  onOpen(c: RawConn): void;
  /** One complete text message. `buf[start..end)` is the payload; valid only during the call. */
  onText(c: RawConn, buf: Buffer, start: number, end: number): void;
  /** The TCP socket closed. `c.closeCode` holds the WebSocket close code (0 if none), `c.httpStatus` a refused upgrade. */
  onClose(c: RawConn): void;
}

export function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** Writes a masked frame header (FIN set) for `len` payload bytes at `off`; returns the payload offset. */
export function writeHeader(dst: Buffer, off: number, len: number, key: Buffer, opcode = 1): number {
  dst[off] = 0x80 | opcode;
  if (len < 126) {
    dst[off + 1] = 0x80 | len;
    off += 2;
  } else if (len < 65536) {
    dst[off + 1] = 0x80 | 126;
    dst.writeUInt16BE(len, off + 2);
    off += 4;
  } else {
    dst[off + 1] = 0x80 | 127;
    dst.writeUInt32BE(Math.floor(len / 2 ** 32), off + 2);
    dst.writeUInt32BE(len >>> 0, off + 6);
    off += 10;
  }
  dst[off] = key[0]!;
  dst[off + 1] = key[1]!;
  dst[off + 2] = key[2]!;
  dst[off + 3] = key[3]!;
  return off + 4;
}

/** A complete masked client frame for `payload`. */
export function buildFrame(payload: Buffer | string, key: Buffer, opcode = 1): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(headerLength(p.length) + 4 + p.length);
  const start = writeHeader(out, 0, p.length, key, opcode);
  const k0 = key[0]!, k1 = key[1]!, k2 = key[2]!, k3 = key[3]!;
  const n = p.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    out[start + i] = p[i]! ^ k0;
    out[start + i + 1] = p[i + 1]! ^ k1;
    out[start + i + 2] = p[i + 2]! ^ k2;
    out[start + i + 3] = p[i + 3]! ^ k3;
  }
  for (; i < n; i++) out[start + i] = p[i]! ^ key[i & 3]!;
  return out;
}

/**
 * A pre-masked frame with fixed-width decimal slots (e.g. a send timestamp and a sequence number).
 * `fill` copies the template and writes only the slot digits, masked in place.
 */
export class FrameTemplate {
  readonly frame: Buffer;
  readonly length: number;
  private readonly payloadStart: number;
  private readonly slots: { off: number; width: number }[] = [];
  private readonly key: Buffer;

  /** `payload` contains each `marker` (a run of '#' of the slot width) once, in slot order. */
  constructor(payload: string, markers: string[], key: Buffer) {
    this.key = key;
    let from = 0;
    for (const m of markers) {
      const at = payload.indexOf(m, from);
      if (at < 0) throw new Error(`marker ${m} not in template`);
      this.slots.push({ off: Buffer.byteLength(payload.slice(0, at)), width: m.length });
      from = at + m.length;
    }
    this.frame = buildFrame(payload, key);
    this.length = this.frame.length;
    this.payloadStart = this.length - Buffer.byteLength(payload);
  }

  /** Writes the frame at `dst[off]` with `values` in the slots; returns the offset after it. */
  fill(dst: Buffer, off: number, v0: number, v1 = 0, v2 = 0): number {
    this.frame.copy(dst, off);
    const base = off + this.payloadStart;
    const key = this.key;
    const slots = this.slots;
    for (let s = 0; s < slots.length; s++) {
      const slot = slots[s]!;
      let n = s === 0 ? v0 : s === 1 ? v1 : v2;
      for (let i = slot.width - 1; i >= 0; i--) {
        const d = n % 10;
        n = (n - d) / 10;
        const p = slot.off + i;
        dst[base + p] = (48 + d) ^ key[p & 3]!;
      }
    }
    return off + this.length;
  }
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * One read buffer for every socket of the process (`onread`): reads land in it and are parsed at
 * once, with no per-read Buffer, no stream machinery and no 'data' event — most of the per-message
 * cost of a receiver when a server writes one frame per TCP segment. Anything kept across reads
 * (a partial frame) is copied out.
 */
const READ_BUF = Buffer.allocUnsafe(256 * 1024);
/** Handshake nonces, drawn once: a server only echoes its hash, so reusing a small pool is harmless. */
const WS_KEYS = Array.from({ length: 64 }, () => randomBytes(16).toString('base64'));
let wsKeyIdx = 0;
function maskKey(): Buffer {
  const k = Buffer.allocUnsafe(4);
  k.writeUInt32BE((Math.random() * 0x100000000) >>> 0, 0);
  return k;
}

export class RawConn {
  readonly sock: net.Socket;
  readonly key: Buffer;
  state: 'upgrading' | 'open' | 'closed' = 'upgrading';
  httpStatus = 0;
  closeCode = 0;
  error: string | null = null;
  /** Free slot for the caller's per-connection state. */
  data: any = null;
  openedAt = 0;
  private readonly h: ConnHandlers;
  private hs: Buffer | null = null;
  private pend: Buffer[] | null = null;
  private pendLen = 0;
  private need = 0;
  private frags: Buffer[] | null = null;
  private closeSent = false;

  constructor(opts: ConnOptions, handlers: ConnHandlers) {
    this.h = handlers;
    this.key = maskKey();
    const sock = net.connect({
      host: opts.host,
      port: opts.port,
      localAddress: opts.localAddress,
      noDelay: true,
      onread: {
        buffer: READ_BUF,
        callback: (n: number, buf: Uint8Array) => {
          this.onData((buf as Buffer).subarray(0, n));
          return true;
        },
      },
    });
    this.sock = sock;
    const req =
      `GET ${opts.path} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${WS_KEYS[wsKeyIdx++ & 63]}\r\nSec-WebSocket-Version: 13\r\n` +
      (opts.origin ? `Origin: ${opts.origin}\r\n` : '') +
      '\r\n';
    sock.write(req);
    sock.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
    });
    sock.on('close', () => {
      const was = this.state;
      this.state = 'closed';
      if (was !== 'closed') this.h.onClose(this);
    });
  }

  get open(): boolean {
    return this.state === 'open';
  }

  write(buf: Buffer): boolean {
    if (this.state !== 'open') return false;
    return this.sock.write(buf);
  }

  sendText(text: string): boolean {
    return this.write(buildFrame(text, this.key));
  }

  /** Sends a close frame and half-closes; the server's close finishes it. */
  close(code = 1000): void {
    if (this.state !== 'open') {
      this.sock.destroy();
      return;
    }
    if (!this.closeSent) {
      this.closeSent = true;
      const p = Buffer.allocUnsafe(2);
      p.writeUInt16BE(code, 0);
      this.sock.write(buildFrame(p, this.key, 8));
    }
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'upgrading') {
      const buf = this.hs ? Buffer.concat([this.hs, chunk]) : chunk;
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > 16384) this.sock.destroy();
        this.hs = Buffer.from(buf);
        return;
      }
      this.hs = null;
      // "HTTP/1.1 101 Switching Protocols"
      this.httpStatus = parseInt(buf.toString('latin1', 9, 12), 10) || 0;
      if (this.httpStatus !== 101) {
        this.state = 'closed';
        this.sock.destroy();
        this.h.onClose(this);
        return;
      }
      this.state = 'open';
      this.openedAt = performance.now();
      this.h.onOpen(this);
      if (end + 4 < buf.length && this.state === 'open') this.parse(buf.subarray(end + 4));
      return;
    }
    if (this.state !== 'open') return;
    if (this.pend) {
      this.pend.push(Buffer.from(chunk));
      this.pendLen += chunk.length;
      if (this.pendLen < this.need) return;
      const all = Buffer.concat(this.pend, this.pendLen);
      this.pend = null;
      this.pendLen = 0;
      this.parse(all);
    } else {
      this.parse(chunk);
    }
  }

  private parse(buf: Buffer): void {
    let pos = 0;
    const n = buf.length;
    let need = 2;
    while (this.state === 'open') {
      if (n - pos < 2) {
        need = 2;
        break;
      }
      const b0 = buf[pos]!;
      const b1 = buf[pos + 1]!;
      let len = b1 & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (n - pos < 4) {
          need = 4;
          break;
        }
        len = buf.readUInt16BE(pos + 2);
        hl = 4;
      } else if (len === 127) {
        if (n - pos < 10) {
          need = 10;
          break;
        }
        len = buf.readUInt32BE(pos + 2) * 2 ** 32 + buf.readUInt32BE(pos + 6);
        hl = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) hl += 4;
      if (n - pos < hl + len) {
        need = hl + len;
        break;
      }
      const start = pos + hl;
      const end = start + len;
      if (masked) for (let i = 0; i < len; i++) buf[start + i] = buf[start + i]! ^ buf[start - 4 + (i & 3)]!;
      pos = end;
      this.frame(b0, buf, start, end);
    }
    if (pos < n && this.state === 'open') {
      const rest = Buffer.from(buf.subarray(pos));
      this.pend = [rest];
      this.pendLen = rest.length;
      this.need = need;
    } else {
      this.need = 0;
    }
  }

  private frame(b0: number, buf: Buffer, start: number, end: number): void {
    const fin = (b0 & 0x80) !== 0;
    const op = b0 & 0x0f;
    if (op === 1 || op === 2 || op === 0) {
      if (fin && !this.frags) {
        this.h.onText(this, buf, start, end);
        return;
      }
      (this.frags ??= []).push(Buffer.from(buf.subarray(start, end)));
      if (fin) {
        const all = Buffer.concat(this.frags);
        this.frags = null;
        this.h.onText(this, all, 0, all.length);
      }
    } else if (op === 8) {
      this.closeCode = end - start >= 2 ? buf.readUInt16BE(start) : 1005;
      if (!this.closeSent) {
        this.closeSent = true;
        const p = Buffer.allocUnsafe(2);
        p.writeUInt16BE(this.closeCode === 1005 ? 1000 : this.closeCode, 0);
        this.sock.write(buildFrame(p, this.key, 8));
      }
      this.sock.end();
      this.state = 'closed';
      this.h.onClose(this);
    } else if (op === 9) {
      this.sock.write(buildFrame(Buffer.from(buf.subarray(start, end)), this.key, 10));
    }
  }
}

/** Index of the byte after `"key":"` in `buf[start..end)`, or -1. */
export function fieldStart(buf: Buffer, needle: Buffer, start: number, end: number): number {
  const at = buf.indexOf(needle, start);
  if (at < 0 || at + needle.length > end) return -1;
  return at + needle.length;
}

/** Parses `width` ASCII digits at `off`; NaN if a non-digit is met. */
export function readDigits(buf: Buffer, off: number, width: number): number {
  let n = 0;
  for (let i = 0; i < width; i++) {
    const d = buf[off + i]! - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return n;
}
