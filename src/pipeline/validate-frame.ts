/**
 * Schema step: the parsed object must be one of the protocol's client frames. Replies carry the
 * failing paths and rule codes only — never the offending values.
 */
import type { z } from 'zod';
import { CLIENT_FRAME_TYPES, ClientFrame } from '../protocol/client-frames.js';
import type { ValidationDetail } from '../protocol/server-frames.js';
import { plainChatMessage } from '../protocol/plain-chat-message.js';

export type ValidateResult =
  | { ok: true; frame: ClientFrame }
  | { ok: false; reason: 'unknown_type' | 'invalid_format' }
  | { ok: false; reason: 'validation_failed'; details: ValidationDetail[] };

const MAX_DETAILS = 10;

function toDetails(error: z.ZodError): ValidationDetail[] {
  const details: ValidationDetail[] = [];
  for (const issue of error.issues) {
    if (details.length === MAX_DETAILS) break;
    // Paths are the schema's own keys and array indexes. Unknown keys (client-chosen strings) are
    // reported at the path of their object with rule `unrecognized_keys`; their names stay out.
    const rule = issue.code === 'custom' ? 'invalid' : issue.code;
    const path = issue.path.map(String).join('.');
    // Two checks of one field can fail alike (an integer past `.max()` also fails `.int()`'s safe range): once each.
    if (details.some((d) => d.path === path && d.rule === rule)) continue;
    details.push({ path, rule });
  }
  return details;
}

export function validateFrame(value: Record<string, unknown>): ValidateResult {
  const type = value.type;
  if (typeof type !== 'string') return { ok: false, reason: 'invalid_format' };
  if (!CLIENT_FRAME_TYPES.has(type)) return { ok: false, reason: 'unknown_type' };
  if (type === 'chat_message') {
    const frame = plainChatMessage(value);
    if (frame !== undefined) return { ok: true, frame };
  }
  const parsed = ClientFrame.safeParse(value);
  if (parsed.success) return { ok: true, frame: parsed.data };
  return { ok: false, reason: 'validation_failed', details: toDetails(parsed.error) };
}
