/**
 * Deployment checks over a schema-valid config: pure rules returning findings (an error refuses
 * start-up in production; a warning is logged and lowers the `check-config` grade). File contents
 * come through `CheckContext`, so the rules stay pure and tests need no files. Findings name keys
 * and rules, never values (they may be secrets).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { RampartConfig } from './schema.js';
import { DEFAULT_TLS_CIPHERS } from './schema.js';
import { devKeyPath } from './dev-key.js';
import { namesKey } from '../auth/development-key.js';
import { caBundleProblem, certificateProblem, holdsPublicKey, privateKeyProblem, tlsPairProblem } from './pem.js';

export type Severity = 'error' | 'warn';
export interface Finding {
  severity: Severity;
  key: string;
  message: string;
}

export interface CheckContext {
  /** A file's text, or undefined when it cannot be read. */
  readFile(path: string): string | undefined;
  /**
   * How an unreadable file (certificate, key) is graded. `serve` cannot start without it (error);
   * `check-config` often checks a deployment's file on another machine, where the paths do not
   * exist (warn). Default error.
   */
  unreadableFile?: 'error' | 'warn';
}

export const fsCheckContext: CheckContext = {
  readFile: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
};

export interface Rule {
  name: string;
  /** Production-only rules; the others apply in every mode. */
  production: boolean;
  check(config: RampartConfig, ctx: CheckContext): Finding[];
}

const error = (key: string, message: string): Finding => ({ severity: 'error', key, message });
const warn = (key: string, message: string): Finding => ({ severity: 'warn', key, message });

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** Every key source the config names: the top-level `jwt` key and each `jwt.issuers` entry. */
function keyEntries(config: RampartConfig): { key: string; secret?: string; publicKeyFile?: string; jwksUrl?: string; issuer?: string; audience?: string; tenants?: string[] }[] {
  const { jwt } = config;
  const entries = [];
  if (namesKey(jwt)) {
    entries.push({ ...jwt, key: 'jwt' });
  }
  jwt.issuers.forEach((entry, i) => entries.push({ ...entry, key: `jwt.issuers.${i}`, audience: entry.audience ?? jwt.audience }));
  return entries;
}

const readableFiles: Rule = {
  name: 'files are readable',
  production: false,
  check: (config, ctx) => {
    const files: [string, string | undefined][] = [
      ['tls.certFile', config.tls?.certFile],
      ['tls.keyFile', config.tls?.keyFile],
      ['tls.caFile', config.tls?.caFile],
      ...keyEntries(config).map((e): [string, string | undefined] => [`${e.key}.publicKeyFile`, e.publicKeyFile]),
    ];
    const unreadable = files.filter(([, path]) => path !== undefined && ctx.readFile(path) === undefined);
    const findings =
      ctx.unreadableFile === 'warn'
        ? unreadable.map(([key]) => warn(key, 'file cannot be read here: check it on the machine that runs the server (serve refuses to start without it)'))
        : unreadable.map(([key]) => error(key, 'file cannot be read'));
    // A key file that reads but holds no public key: serve's createPublicKey would refuse it.
    for (const e of keyEntries(config)) {
      const pem = e.publicKeyFile === undefined ? undefined : ctx.readFile(e.publicKeyFile);
      if (pem !== undefined && !holdsPublicKey(pem)) findings.push(error(`${e.key}.publicKeyFile`, 'file holds no public key (PEM) that serve can use'));
    }
    // A CA bundle that reads but holds no certificate: serve refuses it (tls-options.ts).
    const ca = config.tls?.caFile === undefined ? undefined : ctx.readFile(config.tls.caFile);
    const caProblem = ca === undefined ? undefined : caBundleProblem(ca);
    if (caProblem !== undefined) findings.push(error('tls.caFile', `file ${caProblem}`));
    // A certificate or key that reads but does not parse, or a key that is not the certificate's
    // (of any type: OpenSSL itself only notices a mismatch within one type): serve refuses them.
    findings.push(...tlsPairFindings(config, ctx));
    return findings;
  },
};

/** The pair check of tls-options.ts over what `ctx` reads; each file alone when the other cannot be read. */
function tlsPairFindings(config: RampartConfig, ctx: CheckContext): Finding[] {
  if (config.tls === undefined) return [];
  const cert = ctx.readFile(config.tls.certFile);
  const key = ctx.readFile(config.tls.keyFile);
  // Problems carry OpenSSL's reason, never the file's content nor its path (a value).
  const certProblem = cert === undefined ? undefined : certificateProblem(cert);
  const keyProblem = key === undefined ? undefined : privateKeyProblem(key);
  const findings = [
    ...(certProblem === undefined ? [] : [error('tls.certFile', `file ${certProblem}`)]),
    ...(keyProblem === undefined ? [] : [error('tls.keyFile', `file ${keyProblem}`)]),
  ];
  if (findings.length > 0 || cert === undefined || key === undefined) return findings;
  const pair = tlsPairProblem(cert, key);
  return pair === undefined ? [] : [error(pair.key, `file ${pair.problem}`)];
}

const signingKey: Rule = {
  name: 'signing keys',
  production: true,
  check: (config, ctx) => {
    const entries = keyEntries(config);
    if (entries.length === 0) return [error('jwt', 'production needs jwt.secret, jwt.publicKeyFile, jwt.jwksUrl or jwt.issuers (the development key is refused)')];
    const devPath = devKeyPath(config.dataDir);
    const devKey = ctx.readFile(devPath)?.trim();
    const findings: Finding[] = [];
    for (const e of entries) {
      if (e.secret !== undefined && Buffer.byteLength(e.secret) < 32) findings.push(error(`${e.key}.secret`, 'must be at least 32 bytes in production'));
      if (e.secret !== undefined && devKey !== undefined && devKey.length > 0 && e.secret === devKey) {
        findings.push(error(`${e.key}.secret`, `is the development key from ${devPath}; use a key of your own`));
      }
      if (e.publicKeyFile !== undefined && resolve(e.publicKeyFile) === resolve(devPath)) findings.push(error(`${e.key}.publicKeyFile`, 'is the development key file'));
    }
    return findings;
  },
};

const issuerAudience: Rule = {
  name: 'tokens are bound to an issuer and audience',
  production: true,
  check: (config) =>
    keyEntries(config).flatMap((e) => [
      ...(e.issuer === undefined ? [error(`${e.key}.issuer`, 'production checks the token issuer (iss): set it')] : []),
      ...(e.audience === undefined ? [error(`${e.key === 'jwt' ? 'jwt' : e.key}.audience`, 'production checks the token audience (aud): set it')] : []),
    ]),
};

const issuerTenants: Rule = {
  name: 'each issuer speaks for its own tenants',
  production: true,
  // One key: it is the authority, whatever tenant it names. Several: without a list each of them
  // can mint a token for any tenant's user (the user key is tid:sub, whoever signed).
  check: (config) => {
    const entries = keyEntries(config);
    if (entries.length < 2) return [];
    return entries.filter((e) => e.tenants === undefined).map((e) => warn(`${e.key}.tenants`, 'with several issuers, list the tenants this one may speak for; unset, it can act for every tenant'));
  },
};

const jwksTransport: Rule = {
  name: 'key sets are fetched over https',
  production: true,
  check: (config) =>
    keyEntries(config)
      .filter((e) => e.jwksUrl !== undefined && new URL(e.jwksUrl).protocol !== 'https:' && !isLoopbackHost(new URL(e.jwksUrl).hostname))
      .map((e) => error(`${e.key}.jwksUrl`, 'must be https:// (a key set fetched in plaintext lets anyone on the path mint tokens)')),
};

const origins: Rule = {
  name: 'origins',
  production: true,
  check: (config) => {
    if (config.allowedOrigins.length === 0) return [error('allowedOrigins', 'production needs an explicit list')];
    const findings: Finding[] = [];
    config.allowedOrigins.forEach((origin, i) => {
      if (origin === '*' || /^\w+:\/\/\*$/.test(origin)) findings.push(error(`allowedOrigins.${i}`, 'a wildcard origin is refused in production'));
      else if (origin.startsWith('http://')) findings.push(error(`allowedOrigins.${i}`, 'an http:// origin is refused in production (pages served in plaintext can be altered on the way)'));
    });
    return findings;
  },
};

const queryToken: Rule = {
  name: 'tokens stay out of URLs',
  production: true,
  check: (config) => {
    if (!config.allowQueryToken) return [];
    if (!config.allowQueryTokenInProduction) {
      return [error('allowQueryToken', 'tokens in the URL end up in proxy and access logs; set allowQueryTokenInProduction: true to accept that risk')];
    }
    return [warn('allowQueryToken', 'accepted in production (allowQueryTokenInProduction): tokens appear in URLs')];
  },
};

const transport: Rule = {
  name: 'transport encryption',
  production: true,
  check: (config) => {
    if (!config.tls && config.behindProxy.length === 0) return [error('tls', 'production needs tls.{certFile,keyFile} or behindProxy naming the TLS-terminating proxies')];
    const findings: Finding[] = [];
    if (config.tls && config.tls.ciphers !== DEFAULT_TLS_CIPHERS) findings.push(warn('tls.ciphers', 'differs from the default forward-secret AEAD list'));
    if (config.tls && config.tls.hstsMaxAge < 86400) findings.push(warn('tls.hstsMaxAge', 'below one day (0 = no Strict-Transport-Security)'));
    return findings;
  },
};

const metricsExposure: Rule = {
  name: '/metrics is not public',
  production: true,
  check: (config) => {
    const m = config.metrics;
    if (m?.token !== undefined) return [];
    if (m?.port !== undefined && isLoopbackHost(m.host)) return [];
    if (m?.port !== undefined) return [error('metrics.host', 'metrics on a non-loopback host need metrics.token')];
    // Neither set: /metrics is not served at all (never public), but nothing can scrape it either.
    return [warn('metrics', 'no metrics.port or metrics.token: /metrics is not served')];
  },
};

/** A private-network address (RFC 1918, IPv6 unique local), where a plain-HTTP listener is the operator's call. */
export function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(h) === 6) return /^f[cd][0-9a-f]{2}:/.test(h);
  if (isIP(h) !== 4) return false;
  const [a, b] = h.split('.').map(Number) as [number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/** The admin port is plain HTTP: its bearer token must not cross a public network in the clear. */
const adminExposure: Rule = {
  name: 'the admin API is not served in the clear',
  production: true,
  check: (config) => {
    const a = config.admin;
    const enabled = a.token !== undefined || a.tokenSha256 !== undefined;
    if (!enabled || a.port === undefined || isLoopbackHost(a.host)) return [];
    const how = 'admin.port is plain HTTP: keep admin.host on loopback with a TLS proxy in front, or leave admin.port unset to serve the API under /admin/ on the main port (TLS)';
    // A private address or a name: its network is the operator's to judge; an address any network
    // reaches (0.0.0.0, a public one) is refused, in any numeric form the resolver accepts ("0", "0x0").
    const bare = a.host.replace(/^\[|\]$/g, '');
    const name = isIP(bare) === 0 && !/^(0x[0-9a-f]+|\d+)(\.(0x[0-9a-f]+|\d+)){0,3}$/i.test(bare);
    if (isPrivateHost(a.host) || name) return [warn('admin.host', `${how}; on a private network the bearer token still travels in the clear`)];
    return [error('admin.host', how)];
  },
};

const operations: Rule = {
  name: 'operations',
  production: true,
  check: (config) => [
    ...(config.storage.startsWith('sqlite:') ? [warn('storage', 'SQLite serves one node only; use PostgreSQL for a cluster')] : []),
    ...(['debug', 'trace'].includes(config.logLevel) ? [warn('logLevel', `${config.logLevel} logs are verbose; info is the production level`)] : []),
  ],
};

/** What an `auth` frame carries besides its token: type, deviceId (≤ 64), after, JSON punctuation. */
const AUTH_FRAME_OVERHEAD = 256;

/** A token the verifier accepts must also fit the frame that carries it before the session is active. */
const tokenFitsAuthFrame: Rule = {
  name: 'tokens fit the auth frame',
  production: false,
  check: (config) =>
    config.jwt.maxTokenLength + AUTH_FRAME_OVERHEAD > config.maxPreAuthMessageSize
      ? [
          warn(
            'maxPreAuthMessageSize',
            `an auth frame with a token near jwt.maxTokenLength does not fit: such tokens are refused at the first auth (close 1009) though accepted in a refresh; keep maxPreAuthMessageSize ≥ jwt.maxTokenLength + ${AUTH_FRAME_OVERHEAD}`,
          ),
        ]
      : [],
};

/** A session is sent its timeline: a role without `read` cannot open one (protocol.md §5). */
const defaultRoleReads: Rule = {
  name: 'the default role reads',
  production: false,
  check: (config) =>
    config.chat.roles[config.chat.defaultRole]?.read === true
      ? []
      : [warn('chat.defaultRole', 'has no read permission: every token without a role claim is refused at auth')],
};

export const RULES: readonly Rule[] = [readableFiles, tokenFitsAuthFrame, defaultRoleReads, signingKey, issuerAudience, issuerTenants, jwksTransport, origins, queryToken, transport, metricsExposure, adminExposure, operations];

export interface RuleResult {
  rule: string;
  findings: Finding[];
}

/** Runs the rules for the config's mode (`production` also runs the production-only rules). */
export function runChecks(config: RampartConfig, ctx: CheckContext = fsCheckContext): RuleResult[] {
  const production = config.mode === 'production';
  return RULES.filter((r) => production || !r.production).map((r) => ({ rule: r.name, findings: r.check(config, ctx) }));
}

export const findingsOf = (results: RuleResult[]): Finding[] => results.flatMap((r) => r.findings);

/** A–D by warnings when there is no error; F with any error. */
export function grade(findings: Finding[]): 'A' | 'B' | 'C' | 'D' | 'F' {
  if (findings.some((f) => f.severity === 'error')) return 'F';
  const warnings = findings.length;
  return warnings === 0 ? 'A' : warnings === 1 ? 'B' : warnings === 2 ? 'C' : 'D';
}

export const formatFinding = (f: Finding): string => `${f.key}: ${f.message}`;
