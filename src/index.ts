/** Public API: embed Rampart in your own process, or import the wire protocol. */
export { createRampartServer, type RampartServer, type RampartServerOptions } from './server/rampart-server.js';
export { loadConfig, parseConfig, ConfigError } from './config/load-config.js';
export type { RampartConfig, RampartConfigInput } from './config/schema.js';
export { signDevToken, type DevTokenClaims } from './auth/dev-token.js';
export * from './protocol/index.js';
