/**
 * Recorded sessions, newest first, filtered by principal (admins and auditors), connection and
 * start time, a page at a time (the API's `before` cursor). The filters live in the URL.
 */

import { useState, type FormEvent } from 'react';
import { get, query } from '../api.ts';
import { Badge, PageTitle, Problem, Show, useLoad } from '../components.tsx';
import { span, when } from '../format.ts';
import { hasAnyRole, useMe } from '../me.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import type { ConnectionView, SessionView } from '../types.ts';

const SINCE = [
  ['', 'any time'],
  ['1h', 'the last hour'],
  ['24h', 'the last 24 hours'],
  ['7d', 'the last 7 days'],
  ['30d', 'the last 30 days'],
] as const;

interface Page {
  readonly sessions: SessionView[];
  readonly next: string | null;
}

export function SessionsPage() {
  const me = useMe();
  const seesAll = hasAnyRole(me, ['admin', 'auditor']);
  const { search, href } = useLocation();
  const filters = {
    principal: seesAll ? (search.get('principal') ?? '') : '',
    connection: search.get('connection') ?? '',
    since: search.get('since') ?? '',
  };
  const [connections] = useLoad((signal) => get<ConnectionView[]>('/api/connections', signal), 'connections');
  const [first] = useLoad((signal) => get<Page>(`/api/sessions${query({ ...filters, limit: 50 })}`, signal), href);
  const [more, setMore] = useState<{ for: string; sessions: SessionView[]; next: string | null; error?: unknown }>();

  const apply = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const values = Object.fromEntries([...form.entries()].map(([k, v]) => [k, String(v).trim()]));
    navigate(`/sessions${query(values)}`);
  };

  const loadMore = async (next: string) => {
    try {
      const page = await get<Page>(`/api/sessions${query({ ...filters, limit: 50, before: next })}`);
      setMore((before) => ({ for: href, sessions: [...(before?.for === href ? before.sessions : []), ...page.sessions], next: page.next }));
    } catch (error) {
      setMore((before) => ({ for: href, sessions: before?.for === href ? before.sessions : [], next, error }));
    }
  };

  return (
    <>
      <PageTitle>Sessions</PageTitle>
      <p className="lead">
        Every connection through the gateway is recorded: what ran, what policy said, what came back (masked). Open one to replay it.
        {!seesAll && ' You see your own sessions.'}
      </p>
      <form className="filters" onSubmit={apply} aria-label="Filter sessions" key={href}>
        {seesAll && (
          <label>
            Principal
            <input name="principal" defaultValue={filters.principal} placeholder="anyone" />
          </label>
        )}
        <label>
          Connection
          <select name="connection" defaultValue={filters.connection}>
            <option value="">any</option>
            {connections.state === 'done' &&
              connections.value.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name}
                </option>
              ))}
            {filters.connection && connections.state === 'done' && !connections.value.some((c) => c.name === filters.connection) && (
              <option value={filters.connection}>{filters.connection}</option>
            )}
          </select>
        </label>
        <label>
          Started in
          <select name="since" defaultValue={filters.since}>
            {SINCE.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
            {filters.since && !SINCE.some(([value]) => value === filters.since) && (
              <option value={filters.since}>since {filters.since}</option>
            )}
          </select>
        </label>
        <button type="submit">Show</button>
      </form>

      <Show loaded={first} what="the sessions">
        {(page) => {
          const extra = more?.for === href ? more : undefined;
          const sessions = [...page.sessions, ...(extra?.sessions ?? [])];
          const next = extra ? extra.next : page.next;
          if (sessions.length === 0) return <p className="muted">No sessions match.</p>;
          return (
            <>
              <table className="sessions">
                <thead>
                  <tr>
                    <th scope="col">Started</th>
                    <th scope="col">Principal</th>
                    <th scope="col">Connection</th>
                    <th scope="col">Protocol</th>
                    <th scope="col">Lasted</th>
                    <th scope="col">Ended because</th>
                    <th scope="col">Client</th>
                  </tr>
                </thead>
                <tbody>
                  {sessions.map((s) => (
                    <tr key={s.id}>
                      <td>
                        <Link
                          to={`/sessions/${encodeURIComponent(s.id)}`}
                          aria-label={`Replay the session of ${s.principal} on ${s.connection} started ${when(s.startedAt)}`}
                        >
                          {when(s.startedAt)}
                        </Link>
                      </td>
                      <td>{s.principal}</td>
                      <td>{s.connection}</td>
                      <td>{s.protocol}</td>
                      <td>{s.endedAt ? span(Date.parse(s.endedAt) - Date.parse(s.startedAt)) : <Badge kind="info">live</Badge>}</td>
                      <td>{s.endReason ?? '—'}</td>
                      <td>{s.clientAddress}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <Problem error={extra?.error} />
              {next && (
                <button type="button" onClick={() => void loadMore(next)}>
                  Load older sessions
                </button>
              )}
            </>
          );
        }}
      </Show>
    </>
  );
}
