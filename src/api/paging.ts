/**
 * Cursor paging for the API's lists, one way for all of them: `?limit=` (1 to 1000, default
 * 100) and a cursor parameter that is the `next` of the page before; every page is
 * `{<items>: [...], next}`, `next` being null on the last page. A page is read with one row more
 * than it shows, so that `next` is null exactly when nothing follows (never an empty last page).
 * Cursors are keys of the list's order, not offsets: rows added meanwhile shift nothing.
 */

import { ApiError } from './server.ts';

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

export const LIMIT_PARAMETER = `Items per page, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE}).`;

/** `?limit=`; 400 `invalid-query` unless 1 to 1000. */
export function pageLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PAGE;
  const limit = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE)) throw new ApiError(400, 'invalid-query', `limit must be 1 to ${MAX_PAGE}`);
  return limit;
}

/** A cursor `<ms>:<id>` of a list ordered by a time then an id (newest first); 400 `invalid-query` otherwise. */
export function timeCursor(value: string | undefined, name: string): { readonly at: number; readonly id: string } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,15}):(.{1,200})$/s.exec(value);
  if (!m) throw new ApiError(400, 'invalid-query', `${name} must be the \`next\` of the page before`);
  return { at: Number(m[1]), id: m[2]! };
}

/** A cursor that is a sequence number (the audit log's, a session's statements'); 400 `invalid-query` otherwise. */
export function seqCursor(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value))
    throw new ApiError(400, 'invalid-query', `${name} must be the \`next\` of the page before, a whole number`);
  return Number(value);
}

/** The page out of `rows` read with `limit + 1`: the first `limit`, and the cursor of the last when more follow. */
export function page<T, C>(rows: readonly T[], limit: number, cursorOf: (last: T) => C): { items: T[]; next: C | null } {
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit && items.length > 0 ? cursorOf(items.at(-1)!) : null };
}
