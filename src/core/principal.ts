/**
 * Who is acting. Only identity code creates a `Principal` and only the access check creates an
 * `AccessGrant`: both carry a private brand so that no other module can forge one from a plain
 * object literal.
 */

import type { Plan } from './plan.ts';

declare const verified: unique symbol;

export type PrincipalKind = 'user' | 'service-account';

export interface Principal {
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly [verified]: true;
}

export interface AccessGrant {
  readonly id: string;
  readonly principal: Principal;
  /** The principal's groups when access was granted (from the IdP or the local account). */
  readonly groups: readonly string[];
  readonly connection: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** A plan-scoped grant: its approved plan, which bounds what its sessions may run. */
  readonly plan?: Plan | undefined;
  readonly [verified]: true;
}

/** For identity code only: the single place where a checked name becomes a `Principal`. */
export function verifiedPrincipal(name: string, kind: PrincipalKind): Principal {
  return Object.freeze({ name, kind }) as Principal;
}

/** For the access check only: the single place where a checked credential becomes a grant. */
export function verifiedGrant(fields: Omit<AccessGrant, typeof verified>): AccessGrant {
  return Object.freeze({ ...fields }) as AccessGrant;
}
