/**
 * The approvals inbox: the requests that wait for a decision first (oldest first, each with who
 * asked, the connection, the held statement exactly as it would run, its parameters, why policy
 * held it, the approver group, the time left and the blast-radius preview), with Approve and Deny
 * for approvers and admins; then the decided, expired and cancelled ones, newest first, with who
 * decided, when and why. The list is live (approvals-feed.ts): a new request appears without a
 * reload. Keys: j and k move between pending requests, Enter opens one, a approves, d denies.
 * What each person sees is the API's choice: everything for approvers, admins and auditors, one's
 * own requests for everyone else.
 */

import { useEffect, useRef, useState } from 'react';
import { get, query } from '../api.ts';
import { Asked, Decide, isPageKey, Keys, mayDecide, StatusBadge, summary, type Action } from '../approval-parts.tsx';
import { pendingOf, useApprovals, useFeed } from '../approvals-feed.ts';
import { Countdown, PageTitle, Problem, useNow } from '../components.tsx';
import { when } from '../format.ts';
import { hasAnyRole, useMe } from '../me.ts';
import { Link, navigate } from '../router.tsx';
import type { ApprovalView } from '../types.ts';

const HISTORY_PAGE = 50;

interface History {
  readonly loading: boolean;
  readonly next: string | null;
  readonly error?: unknown;
}

export function ApprovalsPage() {
  const me = useMe();
  const feed = useFeed();
  const state = useApprovals();
  const now = useNow();
  const deciding = mayDecide(me);
  const pending = pendingOf(state);
  const decided = [...state.approvals.values()].filter((a) => a.status !== 'pending').sort((a, b) => b.id - a.id);

  const [history, setHistory] = useState<History>({ loading: true, next: null });
  const loadHistory = async (before: string | null, signal?: AbortSignal) => {
    setHistory((h) => ({ ...h, loading: true, error: undefined }));
    try {
      const page = await get<{ approvals: ApprovalView[]; next: string | null }>(
        `/api/approvals${query({ limit: HISTORY_PAGE, before })}`,
        signal,
      );
      feed.put(page.approvals);
      setHistory({ loading: false, next: page.next });
    } catch (error) {
      if ((error as Error).name !== 'AbortError') setHistory((h) => ({ ...h, loading: false, error }));
    }
  };
  useEffect(() => {
    const controller = new AbortController();
    void loadHistory(null, controller.signal);
    return () => controller.abort();
    // Once, when the page opens: later changes come from the feed.
  }, []);

  // The selected request: the one the keys act on. It follows focus, and moves on when it is decided.
  const [chosen, setChosen] = useState<number | undefined>();
  const selected = pending.some((a) => a.id === chosen) ? chosen : pending[0]?.id;
  const [open, setOpen] = useState<{ id: number; action: Action } | undefined>();
  const [said, setSaid] = useState<string | undefined>();
  const list = useRef<HTMLOListElement>(null);
  const refocus = useRef(false);

  const focusCard = (id: number | undefined) => {
    if (id === undefined) return;
    list.current?.querySelector<HTMLElement>(`[data-approval="${id}"]`)?.focus();
  };

  useEffect(() => {
    if (!refocus.current) return;
    refocus.current = false;
    if (selected !== undefined) focusCard(selected);
  });

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!isPageKey(event)) return;
      const at = pending.findIndex((a) => a.id === selected);
      if (event.key === 'j' || event.key === 'k') {
        const next = pending[Math.min(pending.length - 1, Math.max(0, at + (event.key === 'j' ? 1 : -1)))];
        if (!next) return;
        event.preventDefault();
        setChosen(next.id);
        focusCard(next.id);
      } else if ((event.key === 'a' || event.key === 'd') && deciding && selected !== undefined) {
        event.preventDefault();
        setOpen({ id: selected, action: event.key === 'a' ? 'approve' : 'deny' });
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [pending, selected, deciding]);

  const onDecided = (a: ApprovalView) => {
    setOpen(undefined);
    setSaid(
      a.status === 'approved'
        ? `#${a.id} approved: ${a.kind === 'access' ? 'the grant is made' : `the statement runs now, once, in ${a.requester}’s session`}.`
        : `#${a.id} ${a.status}${a.decisionReason ? `: ${a.decisionReason}` : ''}.`,
    );
    refocus.current = true;
  };

  return (
    <>
      <PageTitle>Approvals</PageTitle>
      <p className="lead">
        {deciding
          ? 'Statements and access requests that policy holds for a person’s decision. What you approve runs once, exactly as shown; a denial needs a reason, which the requester is told.'
          : hasAnyRole(me, ['auditor'])
            ? 'Every approval request and how it ended. Deciding takes the approver or admin role.'
            : 'Your statements and access requests that wait for an approver, and how they ended.'}
      </p>
      <LiveLine live={state.live} error={state.error} />
      {said && (
        <div className="notice" role="status">
          {said}
        </div>
      )}

      <section aria-labelledby="pending-title">
        <h2 id="pending-title">
          Waiting for a decision{' '}
          {state.synced && (
            <span className="count" aria-live="polite">
              ({pending.length})
            </span>
          )}
        </h2>
        {deciding && pending.length > 0 && (
          <Keys>
            Keys: <kbd>j</kbd> / <kbd>k</kbd> next / previous · <kbd>Enter</kbd> open · <kbd>a</kbd> approve · <kbd>d</kbd> deny
          </Keys>
        )}
        {!state.synced ? (
          <p className="muted">Loading the requests…</p>
        ) : pending.length === 0 ? (
          <p className="muted">Nothing waits for a decision. New requests appear here as they come.</p>
        ) : (
          <ol className="approvals" ref={list} aria-label="Requests waiting for a decision, oldest first">
            {pending.map((a) => (
              <li
                key={a.id}
                data-approval={a.id}
                tabIndex={0}
                className={a.id === selected ? 'approval-card selected' : 'approval-card'}
                aria-label={`Approval #${a.id}: ${a.requester} on ${a.connection}`}
                aria-current={a.id === selected ? 'true' : undefined}
                onFocus={(e) => e.target === e.currentTarget && setChosen(a.id)}
                onClick={() => setChosen(a.id)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && e.target === e.currentTarget) navigate(`/approvals/${a.id}`);
                }}
              >
                <div className="approval-head">
                  <Link to={`/approvals/${a.id}`} className="approval-id">
                    #{a.id}
                  </Link>
                  <StatusBadge approval={a} />
                  <span>{a.kind === 'access' ? 'access request' : 'held statement'}</span>
                  <span className="expires">
                    expires in <Countdown until={a.expiresAt} now={now} />
                  </span>
                </div>
                <Asked approval={a} me={me} compact />
                {deciding && (
                  <Decide
                    approval={a}
                    open={open?.id === a.id ? open.action : undefined}
                    onOpen={(action) => (setChosen(a.id), setOpen(action ? { id: a.id, action } : undefined))}
                    onDecided={onDecided}
                  />
                )}
              </li>
            ))}
          </ol>
        )}
      </section>

      <section aria-labelledby="decided-title">
        <h2 id="decided-title">Decided, expired and cancelled</h2>
        {decided.length === 0 ? (
          history.loading ? (
            <p className="muted">Loading…</p>
          ) : (
            <p className="muted">None yet.</p>
          )
        ) : (
          <table className="decided">
            <thead>
              <tr>
                <th scope="col">Request</th>
                <th scope="col">Outcome</th>
                <th scope="col">Asked by</th>
                <th scope="col">Connection</th>
                <th scope="col">What</th>
                <th scope="col">Decided by</th>
                <th scope="col">When</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {decided.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link to={`/approvals/${a.id}`} aria-label={`Open approval #${a.id}`}>
                      #{a.id}
                    </Link>
                  </td>
                  <td>
                    <StatusBadge approval={a} />
                  </td>
                  <td>{a.requester}</td>
                  <td>{a.connection}</td>
                  <td className="wrap">
                    <code className="what">{summary(a)}</code>
                  </td>
                  <td>{a.status === 'expired' ? <span className="muted">nobody</span> : (a.decidedBy ?? '—')}</td>
                  <td>{when(a.decidedAt)}</td>
                  <td className="wrap">{a.decisionReason ?? <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Problem error={history.error} title="Could not load the older requests" />
        {history.next && (
          <button type="button" disabled={history.loading} onClick={() => void loadHistory(history.next)}>
            Load older requests
          </button>
        )}
      </section>
    </>
  );
}

/** Whether the page is live, and how: people trust a list more when they know it moves. */
function LiveLine({ live, error }: { live: 'connecting' | 'stream' | 'polling'; error: unknown }) {
  if (error) return <Problem error={error} title="Live updates paused, trying again" />;
  return (
    <p className="live muted">
      <span className={`live-dot live-${live}`} aria-hidden="true" />
      {live === 'stream'
        ? 'Live: requests and decisions appear as they happen.'
        : live === 'polling'
          ? 'Live: checked every 2 seconds.'
          : 'Connecting to the gateway’s updates…'}
    </p>
  );
}
