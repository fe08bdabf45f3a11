/**
 * How our `pg` pools talk to PostgreSQL: a client-side bound on every query, and one transaction
 * on a client checked out of a pool. pg-pool listens for `error` only on
 * idle clients: a checked-out client whose connection drops (a network cut, a restarted or
 * terminated backend) emits `error` with no listener, and an unhandled `error` event ends the
 * process. While checked out, the client gets a listener that marks it broken; its query in
 * flight rejects on its own, so `work` fails and the client is destroyed instead of reused.
 */
import type pg from 'pg';

/**
 * A client-side bound on every query, a little past `statement_timeout`: the server enforces the
 * statement timeout, and its error never arrives over a connection that stopped answering (a
 * frozen network path keeps the socket open, and TCP keepalive takes minutes to give up). Without
 * it, the one batch in flight waited forever and every send of the node with it.
 */
export function withQueryTimeout(config: pg.PoolConfig): pg.PoolConfig {
  // Read as pg reads it (the query string, decoded, the last value winning, no fragment) without
  // parsing the whole string as a URL: pg also takes forms a URL parser refuses, such as a socket
  // path as `?host=`, and a URL error would carry the password.
  const cs = config.connectionString ?? '';
  const q = cs.indexOf('?');
  const fromUrl = q === -1 ? undefined : new URLSearchParams(cs.slice(q + 1).split('#')[0]).getAll('statement_timeout').at(-1);
  const statementMs = Number(fromUrl ?? config.statement_timeout ?? 0);
  if (config.query_timeout !== undefined || !(statementMs > 0)) return config;
  return { ...config, query_timeout: statementMs + Math.min(5000, statementMs) };
}
/**
 * Statements exempt from statement_timeout (migrations, prune) are exempt from the client-side
 * bound too (pg reads `query_timeout` per query; its types do not list it).
 */
export const NO_QUERY_TIMEOUT = { query_timeout: 2_147_483_647 } as Partial<pg.QueryConfig>;

export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A query that timed out on our side (query_timeout): the connection stopped answering, and a
    // ROLLBACK would wait as long again. Discarded; the server ends the transaction when it notices.
    if (err instanceof Error && err.message === 'Query read timeout') broken = true;
    // A connection that cannot even roll back is discarded rather than returned to the pool.
    else {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
    }
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}
