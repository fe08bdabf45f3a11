/**
 * Starting a listener. A listen error (EADDRINUSE, EACCES) rejects. Once listening, a later
 * 'error' (an accept() failure) is reported to `onError`: a net.Server 'error' with no listener
 * would end the process.
 */
import type { AddressInfo, Server } from 'node:net';

export function listen(server: Server, port: number, host: string, onError: (err: Error) => void, backlog?: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(backlog !== undefined ? { backlog } : {}) }, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
