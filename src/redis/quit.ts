import type { Redis } from 'ioredis';

/**
 * Close an ioredis connection: QUIT when connected (queued commands drain first), otherwise drop
 * the socket — which also cancels a pending reconnect, so nothing keeps the process alive. A QUIT
 * unanswered after `timeoutMs` (a connection that died silently) drops the socket too.
 */
export async function quitRedis(conn: Redis, timeoutMs = 2000): Promise<void> {
  if (conn.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      if (await Promise.race([conn.quit().then(() => true), timedOut])) return;
    } catch {
      // fall through: the connection died while quitting
    } finally {
      clearTimeout(timer);
    }
  }
  conn.disconnect();
}
