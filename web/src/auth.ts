/**
 * The signed-in session: the gateway's session token (`dbr_ses_…`, 15 minutes) and its refresh
 * token, kept in memory and in sessionStorage (this tab only, gone when it closes; never
 * localStorage, which every tab and every later visit would share). The token is refreshed a
 * minute before it expires; the refresh token is single-use, so refreshes never run twice at
 * once. A refresh that fails ends the session: the app shows the sign-in page with the reason.
 *
 * Known limit: a tab duplicated by the browser copies sessionStorage; the two tabs then share one
 * refresh token, and the first of them to refresh ends the other's session (the gateway revokes
 * a login whose refresh token is used twice).
 */

export interface IssuedSession {
  readonly token: string;
  readonly refreshToken: string;
  readonly expiresAt: string;
  readonly refreshExpiresAt: string;
  readonly principal: string;
}

const KEY = 'drawbridge.session';
/** Refresh this long before the token expires. */
const EARLY_MS = 60_000;

let current: IssuedSession | undefined = load();
/** Why the last session ended, for the sign-in page (undefined after a sign-out by hand). */
let endedBecause: string | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<boolean> | undefined;
const listeners = new Set<() => void>();

function load(): IssuedSession | undefined {
  try {
    const text = sessionStorage.getItem(KEY);
    if (!text) return undefined;
    const parsed = JSON.parse(text) as IssuedSession;
    return Date.parse(parsed.refreshExpiresAt) > Date.now() ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function emit(): void {
  for (const listener of listeners) listener();
}

export function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function currentSession(): IssuedSession | undefined {
  return current;
}

export function endReason(): string | undefined {
  return endedBecause;
}

export function startSession(session: IssuedSession): void {
  current = session;
  endedBecause = undefined;
  sessionStorage.setItem(KEY, JSON.stringify(session));
  schedule();
  emit();
}

/** Forgets the session here (the gateway is told by signOut); `reason` is shown on the sign-in page. */
export function endSession(reason?: string): void {
  current = undefined;
  endedBecause = reason;
  sessionStorage.removeItem(KEY);
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  emit();
}

function schedule(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  if (!current) return;
  const wait = Math.max(1000, Date.parse(current.expiresAt) - Date.now() - EARLY_MS);
  timer = setTimeout(() => void refreshSession(), wait);
}

/** Trades the refresh token for a new pair; false (and the session ended) when the gateway refuses it. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= (async () => {
    const session = current;
    if (!session) return false;
    try {
      const response = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken: session.refreshToken }),
      });
      if (response.status === 401) {
        endSession('Your session has ended. Sign in again.');
        return false;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      startSession((await response.json()) as IssuedSession);
      return true;
    } catch {
      // The gateway did not answer: try again shortly while the token is still good.
      if (current && Date.parse(current.expiresAt) > Date.now() + 5000) {
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(() => void refreshSession(), 5000);
        return true;
      }
      endSession('The gateway did not answer, and your session ran out. Sign in again.');
      return false;
    }
  })().finally(() => (refreshing = undefined));
  return refreshing;
}

/** Ends the session at the gateway too (its whole refresh family), then here. */
export async function signOut(): Promise<void> {
  const session = current;
  endSession();
  if (!session) return;
  await fetch('/api/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${session.token}` } }).catch(() => undefined);
}

// A page restored from sessionStorage: refresh at the right time, or now if it is due.
if (current) schedule();
