/**
 * The approvals the signed-in person may see, kept up to date while they are signed in: the nav
 * badge counts the pending ones, the inbox and the detail page show them. One feed per signed-in
 * app, whatever page is open.
 *
 * How it stays live: the gateway's stream `GET /api/approvals/stream` (Server-Sent Events, one
 * `approval` event per request and decision), read with fetch() because it takes the bearer
 * header, which EventSource cannot send. When the stream opens, and every 30 s while it is open,
 * the pending list is read again (`GET /api/approvals?status=pending`): the stream carries only
 * what this gateway saw, not decisions taken through another gateway on the same store. Without
 * the stream (an older gateway answers 404) or while it is broken, the pending list is read every
 * 2 s while the page is visible, and the stream is tried again later.
 *
 * What it guarantees: an approval only moves forward (a decided one never goes back to pending,
 * whatever order answers arrive in); a pending approval that leaves the pending list is read
 * again by its id, so that the page shows how it ended rather than losing it.
 */

import { createContext, useContext, useSyncExternalStore } from 'react';
import { ApiProblem, get } from './api.ts';
import { currentSession, endSession, refreshSession } from './auth.ts';
import { SseParser } from './sse.ts';
import type { ApprovalView } from './types.ts';

export const POLL_MS = 2000;
const RESYNC_MS = 30_000;
/** How long to poll before trying the stream again when the gateway has none. */
const NO_STREAM_RETRY_MS = 60_000;
const PENDING_PAGE = 1000;

export interface FeedState {
  /** Every approval seen, by id, in its latest known state. */
  readonly approvals: ReadonlyMap<number, ApprovalView>;
  /** The pending list has been read once: an empty list means none. */
  readonly synced: boolean;
  /** `stream`: live from the gateway's event stream; `polling`: read every 2 s. */
  readonly live: 'connecting' | 'stream' | 'polling';
  /** Why the last read failed (the gateway did not answer, say); undefined once one works again. */
  readonly error: unknown;
}

type Outcome = 'ended' | 'unsupported' | 'failed';

export class ApprovalsFeed {
  #state: FeedState = { approvals: new Map(), synced: false, live: 'connecting', error: undefined };
  readonly #listeners = new Set<() => void>();
  #syncing: Promise<void> | undefined;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly snapshot = (): FeedState => this.#state;

  #set(change: Partial<FeedState>): void {
    this.#state = { ...this.#state, ...change };
    for (const listener of this.#listeners) listener();
  }

  /** Approvals as the API answered them: newer states replace older ones, never the other way. */
  put(views: readonly ApprovalView[]): void {
    if (views.length === 0) return;
    const next = new Map(this.#state.approvals);
    for (const view of views) {
      const known = next.get(view.id);
      if (known && known.status !== 'pending' && view.status === 'pending') continue;
      next.set(view.id, view);
    }
    this.#set({ approvals: next });
  }

  #forget(id: number): void {
    const next = new Map(this.#state.approvals);
    next.delete(id);
    this.#set({ approvals: next });
  }

  /**
   * Reads the pending list again, and how each pending approval that left it ended. A read that is
   * under way is shared, unless `fresh`: then the list is read once more after it (the stream just
   * opened, and what was created before it opened must not fall between the two).
   */
  sync(signal?: AbortSignal, fresh = false): Promise<void> {
    if (fresh && this.#syncing) return this.#syncing.then(() => this.sync(signal));
    this.#syncing ??= (async () => {
      try {
        const { approvals } = await get<{ approvals: ApprovalView[] }>(`/api/approvals?status=pending&limit=${PENDING_PAGE}`, signal);
        const ids = new Set(approvals.map((a) => a.id));
        const left = [...this.#state.approvals.values()].filter((a) => a.status === 'pending' && !ids.has(a.id));
        this.put(approvals);
        for (const gone of left) {
          try {
            this.put([await get<ApprovalView>(`/api/approvals/${gone.id}`, signal)]);
          } catch (error) {
            if (error instanceof ApiProblem && error.status === 404) this.#forget(gone.id);
            else throw error;
          }
        }
        this.#set({ synced: true, error: undefined });
      } catch (error) {
        if ((error as Error).name !== 'AbortError') this.#set({ error });
      }
    })().finally(() => (this.#syncing = undefined));
    return this.#syncing;
  }

  /** Keeps the feed live until the returned function is called (sign-out, another principal). */
  start(): () => void {
    const stop = new AbortController();
    void this.#run(stop.signal);
    return () => stop.abort();
  }

  async #run(signal: AbortSignal): Promise<void> {
    void this.sync(signal);
    let failures = 0;
    while (!signal.aborted) {
      const opened = Date.now();
      const outcome = await this.#stream(signal).catch((): Outcome => 'failed');
      if (signal.aborted) return;
      // A stream that lasted is one that ended normally (its token was replaced): back at once.
      failures = outcome === 'ended' && Date.now() - opened > RESYNC_MS ? 0 : failures + 1;
      const pause = outcome === 'unsupported' ? NO_STREAM_RETRY_MS : Math.min(RESYNC_MS, 500 * 2 ** Math.min(failures, 6));
      this.#set({ live: 'polling' });
      await this.#poll(pause, signal);
    }
  }

  /** Reads the pending list every 2 s for `ms`, while the page is visible. */
  async #poll(ms: number, signal: AbortSignal): Promise<void> {
    const until = Date.now() + ms;
    while (!signal.aborted && Date.now() < until) {
      if (document.visibilityState === 'visible') await this.sync(signal);
      await sleep(Math.min(POLL_MS, Math.max(0, until - Date.now())), signal);
    }
  }

  async #stream(signal: AbortSignal): Promise<Outcome> {
    const token = currentSession()?.token;
    if (!token) return 'failed';
    const response = await fetch('/api/approvals/stream', {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      cache: 'no-store',
      signal,
    });
    if (response.status === 401) {
      // The token ended (refreshed elsewhere, expired while the tab slept): one refresh, then again.
      await response.body?.cancel();
      if (await refreshSession()) return 'ended';
      endSession('Your session has ended. Sign in again.');
      return 'failed';
    }
    if (response.status === 404 || response.status === 405) {
      await response.body?.cancel();
      return 'unsupported';
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      return 'failed';
    }
    this.#set({ live: 'stream' });
    // What happened before the stream opened.
    void this.sync(signal, true);
    const resync = setInterval(() => document.visibilityState === 'visible' && void this.sync(signal), RESYNC_MS);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 'ended';
        for (const event of parser.push(value)) {
          if (event.event !== 'approval') continue;
          try {
            this.put([JSON.parse(event.data) as ApprovalView]);
          } catch {
            // Not JSON: not an event of this version of the stream; the next sync has it anyway.
          }
        }
      }
    } finally {
      clearInterval(resync);
      reader.cancel().catch(() => undefined);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

export const FeedContext = createContext<ApprovalsFeed | undefined>(undefined);

export function useFeed(): ApprovalsFeed {
  const feed = useContext(FeedContext);
  if (!feed) throw new Error('useFeed outside a signed-in page');
  return feed;
}

export function useApprovals(): FeedState {
  const feed = useFeed();
  return useSyncExternalStore(feed.subscribe, feed.snapshot);
}

/** Pending first, oldest first (the first to expire, as a rule); an inbox reads top down. */
export function pendingOf(state: FeedState): ApprovalView[] {
  return [...state.approvals.values()].filter((a) => a.status === 'pending').sort((a, b) => a.id - b.id);
}
