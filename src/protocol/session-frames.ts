/**
 * Frames for a user's own sessions (issue 10): list them across the cluster and end one remotely.
 * Self-contained so the chat frames can evolve on their own; `client-frames.ts` and
 * `server-frames.ts` only add these to their unions.
 */
import { z } from 'zod';

export const MAX_REQUEST_ID = 64;
/** Cluster-wide session ids are `<nodeId>:<local id>`; bounded so a frame cannot carry a blob. */
export const MAX_SESSION_ID = 128;

const requestId = z.string().min(1).max(MAX_REQUEST_ID).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

export const ListSessionsFrame = z.strictObject({
  type: z.literal('list_sessions'),
  requestId: requestId.optional(),
});

export const EndSessionFrame = z.strictObject({
  type: z.literal('end_session'),
  sessionId: z.string().min(1).max(MAX_SESSION_ID).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'),
  requestId: requestId.optional(),
});

export type ListSessionsFrame = z.infer<typeof ListSessionsFrame>;
export type EndSessionFrame = z.infer<typeof EndSessionFrame>;

/** One session of the user, as `sessions` lists it. */
export interface SessionInfo {
  sessionId: string;
  /** Node id of the server holding the socket. */
  node: string;
  deviceId?: string;
  ip: string;
  /** When it authenticated, ms since epoch. */
  since: number;
  /** True for the session that asked. */
  current: boolean;
}

export type SessionServerFrame =
  | { type: 'sessions'; sessions: SessionInfo[]; requestId?: string }
  /** Refusals are `error forbidden` (not a session of the caller, whether or not it exists), with the `requestId`. */
  | { type: 'session_ended'; sessionId: string; requestId?: string };
