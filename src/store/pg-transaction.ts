/**
 * One transaction on a client checked out of a `pg` pool. pg-pool listens for `error` only on
 * idle clients: a checked-out client whose connection drops (a network cut, a restarted or
 * terminated backend) emits `error` with no listener, and an unhandled `error` event ends the
 * process. While checked out, the client gets a listener that marks it broken; its query in
 * flight rejects on its own, so `work` fails and the client is destroyed instead of reused.
 */
import type pg from 'pg';

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
