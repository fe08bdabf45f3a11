/**
 * Raw TCP WebSocket clients for the tests that must send what a real client library never would:
 * hand-written upgrade requests (duplicate headers), malformed frames (invalid UTF-8, unmasked,
 * absurd lengths, fragment floods). Waits on events only, never on time.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface RawFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export interface EncodeOptions {
  fin?: boolean;
  /** 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong. */
  opcode?: number;
  /** Clients must mask; `false` sends an unmasked frame. */
  mask?: boolean;
  /** Declare this payload length instead of the real one (the 64-bit form is used when > 65535). */
  declaredLength?: bigint;
}

/** One WebSocket frame as bytes. */
export function encodeFrame(payload: Buffer | string, o: EncodeOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const fin = o.fin ?? true;
  const opcode = o.opcode ?? 1;
  const mask = o.mask ?? true;
  const length = o.declaredLength ?? BigInt(data.length);
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  let ext = Buffer.alloc(0);
  if (length < 126n) head.push((mask ? 0x80 : 0) | Number(length));
  else if (length < 65536n) {
    head.push((mask ? 0x80 : 0) | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(length));
  } else {
    head.push((mask ? 0x80 : 0) | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(length);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, data]);
  const key = randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] = (masked[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([Buffer.from(head), ext, key, masked]);
}

/** A raw TCP connection with an HTTP/WebSocket reader. */
export class RawSocket {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  /** Status of the HTTP response to the upgrade request, once it arrived. */
  status: number | undefined;
  readonly frames: RawFrame[] = [];
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => {
        socket.off('error', reject);
        resolve(new RawSocket(socket));
      });
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private parse(): void {
    if (this.status === undefined) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.buffer.subarray(0, end).toString('latin1');
      this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      this.buffer = this.buffer.subarray(end + 4);
    }
    if (this.status !== 101) return;
    for (;;) {
      if (this.buffer.length < 2) return;
      const b0 = this.buffer[0] as number;
      const b1 = this.buffer[1] as number;
      let len = b1 & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + len) return;
      this.frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: Buffer.from(this.buffer.subarray(offset, offset + len)) });
      this.buffer = this.buffer.subarray(offset + len);
    }
  }

  /** Resolves when `pred` holds, re-checked on every chunk and on close. */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) {
      if (this.ended) throw new Error('socket closed before the condition held');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Writes a hand-built upgrade request; `headers` may repeat names. Resolves with the status. */
  async upgrade(path = '/ws', headers: [string, string][] = []): Promise<number> {
    const lines = [
      `GET ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...headers.map(([k, v]) => `${k}: ${v}`),
    ];
    this.socket.write(lines.join('\r\n') + '\r\n\r\n');
    await this.until(() => this.status !== undefined || this.ended);
    return this.status ?? 0;
  }

  write(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  sendText(text: string | Buffer, o: EncodeOptions = {}): void {
    this.write(encodeFrame(text, o));
  }

  /** The server's close code: resolves when a close frame arrived (undefined if the socket just ended). */
  async closeCode(): Promise<number | undefined> {
    const find = (): RawFrame | undefined => this.frames.find((f) => f.opcode === 8);
    await this.until(() => find() !== undefined || this.ended).catch(() => {});
    const frame = find();
    return frame && frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
  }

  /** Parsed JSON of text frames received so far. */
  json(): { type: string; [k: string]: unknown }[] {
    return this.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString('utf8')) as { type: string });
  }

  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}
