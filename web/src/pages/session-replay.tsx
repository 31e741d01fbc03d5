/**
 * One recorded session, replayed: every statement in order (a thousand at a time, more on request) with its verdict (allowed, or denied by
 * policy), its outcome, when it started relative to the session, how long it took, the rows, the
 * error, and what it returned as the client saw it (masked). "Play" shows the statements at the
 * pace they ran (long pauses shortened); j and k move between statements.
 */

import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import { get, query } from '../api.ts';
import { Badge, PageTitle, Problem, Show, useLoad } from '../components.tsx';
import { span, when } from '../format.ts';
import { hasAnyRole, useMe } from '../me.ts';
import { Link } from '../router.tsx';
import type { SessionView, StatementView } from '../types.ts';

/** A pause between statements longer than this plays as this long. */
const LONGEST_PAUSE_MS = 2000;

/** Statements fetched at a time: a long session is loaded a page at a time, when asked for. */
const PAGE = 1000;

interface SessionPage {
  readonly session: SessionView;
  readonly statements: StatementView[];
  /** The seq to read on from; null when this page was the last. */
  readonly next: number | null;
}

const statementsPath = (id: string, after: number | null) => `/api/sessions/${encodeURIComponent(id)}${query({ limit: PAGE, after })}`;

export function SessionReplayPage({ id }: { id: string }) {
  const [loaded] = useLoad((signal) => get<SessionPage>(statementsPath(id, null), signal), id);
  return (
    <>
      <p className="breadcrumb">
        <Link to="/sessions">← Sessions</Link>
      </p>
      <PageTitle>Session replay</PageTitle>
      <Show loaded={loaded} what="the session">
        {(first) => <Replay first={first} />}
      </Show>
    </>
  );
}

function Replay({ first }: { first: SessionPage }) {
  const session = first.session;
  const [statements, setStatements] = useState<readonly StatementView[]>(first.statements);
  const [next, setNext] = useState(first.next);
  const [more, setMore] = useState<{ loading: boolean; error?: unknown }>({ loading: false });
  const [shown, setShown] = useState(first.statements.length);
  const [speed, setSpeed] = useState(1);
  const [playing, setPlaying] = useState(false);
  const list = useRef<HTMLOListElement>(null);
  const start = Date.parse(session.startedAt);

  useEffect(() => {
    if (!playing) return;
    if (shown >= statements.length) {
      setPlaying(false);
      return;
    }
    const before = shown === 0 ? start : Date.parse(statements[shown - 1]!.startedAt);
    const gap = Math.min(LONGEST_PAUSE_MS, Math.max(0, Date.parse(statements[shown]!.startedAt) - before)) / speed;
    const timer = setTimeout(() => setShown((n) => n + 1), gap);
    return () => clearTimeout(timer);
  }, [playing, shown, speed, statements, start]);

  useEffect(() => {
    if (playing && shown > 0) list.current?.children[shown - 1]?.scrollIntoView({ block: 'nearest' });
  }, [playing, shown]);

  const onKey = (event: KeyboardEvent<HTMLOListElement>) => {
    if (event.key !== 'j' && event.key !== 'k') return;
    const items = [...(list.current?.querySelectorAll<HTMLElement>(':scope > li') ?? [])];
    const at = items.indexOf(document.activeElement as HTMLElement);
    const next = items[Math.min(items.length - 1, Math.max(0, at + (event.key === 'j' ? 1 : -1)))];
    next?.focus();
    event.preventDefault();
  };

  const loadMore = () => {
    if (next === null || more.loading) return;
    setMore({ loading: true });
    get<SessionPage>(statementsPath(session.id, next)).then(
      (page) => {
        // What was all shown stays all shown; a replay under way plays on into the new page.
        setShown((n) => (n === statements.length ? statements.length + page.statements.length : n));
        setStatements([...statements, ...page.statements]);
        setNext(page.next);
        setMore({ loading: false });
      },
      (error: unknown) => setMore({ loading: false, error }),
    );
  };

  const seesAudit = hasAnyRole(useMe(), ['admin', 'auditor']);
  const denied = statements.filter((s) => s.outcome === 'denied').length;
  const failed = statements.filter((s) => s.outcome === 'error').length;

  return (
    <>
      <dl className="facts">
        <div>
          <dt>Principal</dt>
          <dd>{session.principal}</dd>
        </div>
        <div>
          <dt>Connection</dt>
          <dd>
            {session.connection} <span className="muted">({session.protocol})</span>
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{when(session.startedAt)}</dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd>
            {session.endedAt ? (
              <>
                {when(session.endedAt)} <span className="muted">after {span(Date.parse(session.endedAt) - start)}</span>
              </>
            ) : (
              <Badge kind="info">still open</Badge>
            )}
            {session.endReason && <span className="muted"> · {session.endReason}</span>}
          </dd>
        </div>
        <div>
          <dt>Client</dt>
          <dd>{session.clientAddress}</dd>
        </div>
        {seesAudit && (
          <div>
            <dt>Audit</dt>
            <dd>
              <Link to={`/audit${query({ subject: session.id, since: 'all' })}`}>This session’s audit records</Link>
            </dd>
          </div>
        )}
        <div>
          <dt>Grant</dt>
          <dd>
            <code>{session.grant}</code>
          </dd>
        </div>
        <div>
          <dt>Statements</dt>
          <dd>
            {statements.length}
            {next !== null && <span className="muted"> loaded, more to load</span>}
            {denied > 0 && <span className="muted"> · {denied} denied</span>}
            {failed > 0 && <span className="muted"> · {failed} failed</span>}
          </dd>
        </div>
      </dl>

      {statements.length === 0 ? (
        <p className="muted">This session ran no statements.</p>
      ) : (
        <>
          <div className="row replay-controls">
            <button
              type="button"
              className="primary"
              onClick={() => {
                if (!playing && shown >= statements.length) setShown(0);
                setPlaying(!playing);
              }}
            >
              {playing ? 'Pause' : shown >= statements.length ? 'Play from the start' : 'Resume'}
            </button>
            <label>
              Speed{' '}
              <select value={speed} onChange={(e) => setSpeed(Number(e.target.value))}>
                {[1, 2, 4, 16].map((s) => (
                  <option key={s} value={s}>
                    {s}×
                  </option>
                ))}
              </select>
            </label>
            {shown < statements.length && (
              <button type="button" onClick={() => (setPlaying(false), setShown(statements.length))}>
                Show all
              </button>
            )}
            <span className="muted" aria-live="polite">
              {shown} of {statements.length} shown · j / k: next / previous statement
            </span>
          </div>
          <ol className="statements" ref={list} onKeyDown={onKey} aria-label="Statements, in the order they ran">
            {statements.slice(0, shown).map((s) => (
              <Statement key={s.seq} statement={s} sessionStart={start} />
            ))}
          </ol>
          {next !== null && (
            <div className="row">
              <button type="button" onClick={loadMore} disabled={more.loading}>
                {more.loading ? 'Loading…' : `Load the next ${PAGE} statements`}
              </button>
              <Problem error={more.error} title="Could not load more statements" />
            </div>
          )}
        </>
      )}
    </>
  );
}

function Statement({ statement: s, sessionStart }: { statement: StatementView; sessionStart: number }) {
  return (
    <li tabIndex={0} className={`statement outcome-${s.outcome}`} aria-label={`Statement ${s.seq}: ${s.outcome}`}>
      <div className="statement-head">
        <span className="seq">#{s.seq}</span>
        <span title={when(s.startedAt)}>+{span(Date.parse(s.startedAt) - sessionStart)}</span>
        {s.outcome === 'denied' ? <Badge kind="bad">denied by policy</Badge> : <Badge kind="ok">allowed</Badge>}
        {s.outcome === 'ok' && <Badge kind="ok">ok</Badge>}
        {s.outcome === 'error' && <Badge kind="bad">error</Badge>}
        {s.outcome === 'cancelled' && <Badge kind="warn">cancelled</Badge>}
        <span className="muted">took {span(s.durationMs)}</span>
        {s.rows !== null && (
          <span className="muted">
            {s.rows} {s.rows === 1 ? 'row' : 'rows'}
          </span>
        )}
      </div>
      <pre className="sql">
        <code>{s.text}</code>
      </pre>
      {(s.errorCode || s.errorMessage) && (
        <p className="statement-error">
          {s.errorCode && <code>{s.errorCode}</code>} {s.errorMessage}
        </p>
      )}
      {s.result && <ResultTable result={s.result} />}
    </li>
  );
}

function ResultTable({ result }: { result: NonNullable<StatementView['result']> }) {
  if (result.columns.length === 0) return null;
  return (
    <div className="result">
      <table>
        <thead>
          <tr>
            {result.columns.map((c, i) => (
              <th key={i} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {result.rows.map((row, r) => (
            <tr key={r}>
              {row.map((value, i) => (
                <td key={i}>{value === null ? <span className="null">NULL</span> : value}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {result.truncated && <p className="muted">More was returned than the recording keeps; the rest is not recorded.</p>}
    </div>
  );
}
