/** The signed-in principal (`GET /api/whoami`), for the pages that adapt to its roles. */

import { createContext, useContext } from 'react';
import type { Role, WhoAmI } from './types.ts';

export const MeContext = createContext<WhoAmI | undefined>(undefined);

export function useMe(): WhoAmI {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe outside a signed-in page');
  return me;
}

export function hasAnyRole(me: WhoAmI, roles: readonly Role[] | undefined): boolean {
  return roles === undefined || roles.some((role) => me.roles.includes(role));
}
