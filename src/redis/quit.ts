import type { Redis } from 'ioredis';

/**
 * Close an ioredis connection: QUIT when connected (queued commands drain first), otherwise drop
 * the socket — which also cancels a pending reconnect, so nothing keeps the process alive.
 */
export async function quitRedis(conn: Redis): Promise<void> {
  if (conn.status === 'ready') {
    try {
      await conn.quit();
      return;
    } catch {
      // fall through: the connection died while quitting
    }
  }
  conn.disconnect();
}
