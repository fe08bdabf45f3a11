/** `rampart token`: a development token signed with the key the server uses (HS256 setups only). */
import { ConfigError, loadConfig } from '../config/load-config.js';
import { loadOrCreateDevSecret } from '../config/dev-key.js';
import { decodeJwt } from 'jose';
import { devTokenSigning, signDevToken } from '../auth/dev-token.js';
import { isUserId } from '../auth/token-verifier.js';
import { CONFIG_OPTION, stringValue, type Command } from './command.js';

export const tokenCommand: Command = {
  name: 'token',
  summary: 'print a development token',
  help: `usage: rampart token --sub UUID [--role ROLE] [--tid TENANT] [--ttl 1h] [--config FILE]

Prints a token signed with jwt.secret, or with the development key in dataDir when no key is
configured. Tokens for public-key and JWKS setups come from your identity provider.

  --sub UUID       the user id (required)
  --role ROLE      the role claim
  --tid TENANT     the tenant claim
  --ttl DURATION   lifetime: seconds or a duration such as 1h (default 1h)
  -c, --config     the config file
`,
  options: { ...CONFIG_OPTION, sub: { type: 'string' }, role: { type: 'string' }, tid: { type: 'string' }, ttl: { type: 'string' } },
  maxPositionals: 0,
  run: async (values) => {
    const sub = stringValue(values, 'sub');
    if (!sub) throw new ConfigError(['--sub: required (a UUID)']);
    if (!isUserId(sub)) throw new ConfigError(['--sub: must be a UUID (the server refuses any other subject)']);
    const config = loadConfig(stringValue(values, 'config'));
    if (config.jwt.publicKeyFile || config.jwt.jwksUrl) throw new ConfigError(['jwt: tokens for public-key setups come from your identity provider']);
    // Without jwt.secret the development key would sign a token no configured issuer accepts.
    // (Production without a key is refused by loadConfig already.)
    if (config.jwt.secret === undefined && config.jwt.issuers.length > 0) throw new ConfigError(['jwt.issuers: tokens come from those issuers (or set jwt.secret)']);
    const secret = config.jwt.secret ?? loadOrCreateDevSecret(config.dataDir).secret;
    const role = stringValue(values, 'role');
    const tid = stringValue(values, 'tid');
    const jwt = await signDevToken(secret, {
      sub,
      ...(role ? { role } : {}),
      ...(tid ? { tid } : {}),
      ttl: ttlOf(stringValue(values, 'ttl') ?? '1h'),
      ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
      ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
    }, devTokenSigning(config.jwt));
    // A lifetime the server refuses (`jwt.maxTokenLifetimeMs`) would be a token that cannot work.
    const { iat, exp } = decodeJwt(jwt);
    if (iat !== undefined && exp !== undefined && (exp - iat) * 1000 > config.jwt.maxTokenLifetimeMs) {
      throw new ConfigError([`--ttl: longer than jwt.maxTokenLifetimeMs (${config.jwt.maxTokenLifetimeMs} ms): the server would refuse the token`]);
    }
    process.stdout.write(jwt + '\n');
    return 0;
  },
};

/** `--ttl 3600` is seconds (jose reads a bare number in a string as no unit); `1h`, `90s` stay durations. */
const ttlOf = (value: string): string | number => (/^\d+$/.test(value) ? Number(value) : value);
