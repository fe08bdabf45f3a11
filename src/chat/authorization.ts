/**
 * Who may do what. Tenants are isolated by construction (every user key is tenant-qualified, so a
 * message can only ever reach the same uuid inside the sender's tenant); roles map to permissions
 * from config, and a role that is not configured has none (deny by default).
 */
import type { Identity } from '../auth/token-verifier.js';

export interface Permissions {
  send: boolean;
  read: boolean;
  /** May create group conversations. */
  createGroup: boolean;
}

export interface RolePolicy {
  roles: Readonly<Record<string, Permissions>>;
  defaultRole: string;
}

const NONE: Permissions = Object.freeze({ send: false, read: false, createGroup: false });

export function permissionsFor(policy: RolePolicy, role: string | undefined): Permissions {
  const name = role ?? policy.defaultRole;
  return Object.hasOwn(policy.roles, name) ? (policy.roles[name] as Permissions) : NONE;
}

/** The key under which a user's sessions, limits and bus channel live. */
export function userKeyOf(identity: Pick<Identity, 'tenantId' | 'userId'>): string {
  return peerKey(identity.tenantId, identity.userId);
}

export function peerKey(tenantId: string, userId: string): string {
  return `${tenantId}:${userId.toLowerCase()}`;
}
