export * from './close-codes.js';
export * from './reasons.js';
export * from './client-frames.js';
export * from './server-frames.js';
export * from './url.js';
export * from './session-frames.js';
