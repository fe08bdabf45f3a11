/** Small helpers for reply frames that echo the request's `requestId`. */
import type { ServerFrame } from '../protocol/server-frames.js';

/** `frame` with the request's `requestId`, when it carried one. */
export function withRequestId<F extends ServerFrame>(frame: F, requestId: string | undefined): F {
  return requestId === undefined ? frame : { ...frame, requestId };
}
