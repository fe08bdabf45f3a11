/**
 * Encryption at rest for message fields: AES-256-GCM, a fresh random 12-byte IV per value, and
 * the key id stored beside each row so keys can be rotated: the active key seals new rows, every
 * key still in the keyring can open old ones. Keys always come from the caller (config or a
 * secret store); there is no default key.
 *
 * Sealed format (base64 text, so it fits the same TEXT column as plaintext):
 *   iv (12 bytes) || ciphertext || GCM tag (16 bytes)
 * The caller passes a `context` (row id + field) that is bound as additional authenticated data,
 * so a ciphertext copied into another row or column fails to open instead of being shown there.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export interface Keyring {
  /** The key that seals new values; must be present in `keys`. */
  activeKeyId: string;
  /** Every key that may still open stored values (the active one and rotated-out ones). */
  keys: Readonly<Record<string, Buffer>>;
}

/** A stored value names a key the keyring does not hold (rotated out and removed too early?). */
export class UnknownKeyError extends Error {
  override readonly name = 'UnknownKeyError';
  constructor(readonly keyId: string) {
    super(`content key "${keyId}" is not in the keyring: add it back to read values sealed with it`);
  }
}

/** A sealed value failed authentication: wrong key, tampered or moved ciphertext. */
export class DecryptionError extends Error {
  override readonly name = 'DecryptionError';
  constructor(readonly keyId: string) {
    super(`stored value failed authentication with content key "${keyId}" (tampered, moved or wrong key)`);
  }
}

/**
 * A sealed value this keyring cannot open: its key is not in the keyring (UnknownKeyError), or the
 * bytes under its id are not the ones that sealed it, or the value was damaged (DecryptionError).
 * Either way the row is unreadable until the right key is back; nothing else is wrong.
 */
export function isKeyError(err: unknown): err is UnknownKeyError | DecryptionError {
  return err instanceof UnknownKeyError || err instanceof DecryptionError;
}

export class ContentCipher {
  readonly activeKeyId: string;
  readonly #keys: Map<string, Buffer>;
  readonly #activeKey: Buffer;

  constructor(keyring: Keyring) {
    this.#keys = new Map();
    for (const [id, key] of Object.entries(keyring.keys)) {
      // The id is not shown: a key written where its id belongs would be.
      if (!KEY_ID.test(id)) throw new Error(`a content key id must match ${KEY_ID.source}`);
      if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
        throw new Error(`content key "${id}" must be exactly ${KEY_BYTES} bytes`);
      }
      // Own copy: a caller reusing or zeroing its buffer must not change what we encrypt with.
      this.#keys.set(id, Buffer.from(key));
    }
    const active = this.#keys.get(keyring.activeKeyId);
    if (active === undefined) throw new Error(`active content key "${keyring.activeKeyId}" is not in the keyring`);
    this.activeKeyId = keyring.activeKeyId;
    this.#activeKey = active;
  }

  /** Keyring from base64-encoded keys (the shape a config file or environment variable holds). */
  static fromBase64(activeKeyId: string, keys: Readonly<Record<string, string>>): ContentCipher {
    const decoded: Record<string, Buffer> = {};
    for (const [id, b64] of Object.entries(keys)) decoded[id] = Buffer.from(b64, 'base64');
    return new ContentCipher({ activeKeyId, keys: decoded });
  }

  hasKey(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /** Seal `plaintext` with the active key. `context` must be given again, identical, to open it. */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#activeKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const head = cipher.update(plaintext, 'utf8');
    const tail = cipher.final();
    return Buffer.concat([iv, head, tail, cipher.getAuthTag()]).toString('base64');
  }

  /** Open a value sealed with `keyId`. Throws UnknownKeyError or DecryptionError, never returns garbage. */
  open(keyId: string, sealed: string, context: string): string {
    const key = this.#keys.get(keyId);
    if (key === undefined) throw new UnknownKeyError(keyId);
    const raw = Buffer.from(sealed, 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new DecryptionError(keyId);
    const decipher = createDecipheriv(ALGORITHM, key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      const head = decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES), undefined, 'utf8');
      return head + decipher.final('utf8');
    } catch {
      throw new DecryptionError(keyId);
    }
  }
}
