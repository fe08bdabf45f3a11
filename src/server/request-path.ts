/**
 * The path of a request target, without its query: `/ws?x` → `/ws`. A target in absolute form
 * (`http://host:port/healthz`, which RFC 9112 §3.2.2 obliges a server to accept) is its path too.
 * Nothing is decoded: routes match the path as sent.
 */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

export function requestPath(target: string | undefined): string {
  if (target === undefined || target === '') return '/';
  const origin = target.charCodeAt(0) === 47 /* '/' */ ? 0 : (ABSOLUTE.exec(target)?.[0].length ?? 0);
  const q = target.indexOf('?', origin);
  const path = target.slice(origin, q === -1 ? undefined : q);
  return path === '' ? '/' : path;
}
