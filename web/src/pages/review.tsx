/**
 * The access review, for admins and auditors: for every principal and connection, what policy
 * allows, what was granted and what was used in a window, with the rights never used flagged and
 * the last decision; a reviewer certifies (keeps) the access or, as an admin, revokes it (its live
 * grants end, and their sessions). The filters live in the URL, so a review can be shared.
 */

import { useState, type FormEvent } from 'react';
import { call, get, query } from '../api.ts';
import { Badge, PageTitle, Problem, Show, useLoad, useSubmit } from '../components.tsx';
import { when } from '../format.ts';
import { hasAnyRole, useMe } from '../me.ts';
import { navigate, useLocation } from '../router.tsx';
import type { ReviewDecided, ReviewReport, ReviewRow } from '../types.ts';

const DEFAULT_SINCE = '30d';

type Deciding = { readonly principal: string; readonly connection: string; readonly how: 'certify' | 'revoke' };

export function ReviewPage() {
  const me = useMe();
  const mayRevoke = hasAnyRole(me, ['admin']);
  const { search, href } = useLocation();
  const filters = {
    since: search.get('since') ?? DEFAULT_SINCE,
    until: search.get('until') ?? '',
    principal: search.get('principal') ?? '',
    connection: search.get('connection') ?? '',
    unused: search.get('unused') === 'true' ? 'true' : '',
  };
  const [report, reload] = useLoad((signal) => get<ReviewReport>(`/api/access/review${query(filters)}`, signal), href);
  const [deciding, setDeciding] = useState<Deciding>();
  const [done, setDone] = useState<ReviewDecided>();

  const apply = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const text = (name: string) => String(form.get(name) ?? '').trim();
    navigate(
      `/review${query({
        since: text('since') === DEFAULT_SINCE ? '' : text('since'),
        until: text('until'),
        principal: text('principal'),
        connection: text('connection'),
        unused: form.get('unused') ? 'true' : '',
      })}`,
    );
  };

  const decided = (decision: ReviewDecided) => {
    setDeciding(undefined);
    setDone(decision);
    reload();
  };

  return (
    <>
      <PageTitle>Access review</PageTitle>
      <p className="lead">
        Who can reach which connection, what they were granted and what they actually ran. Rights never used are flagged with a suggestion;
        certify the access that is still needed{mayRevoke ? ', revoke the rest' : ''}. Every decision is kept and audited.
      </p>
      <form className="filters" onSubmit={apply} aria-label="Filter the review" key={href}>
        <label>
          Since
          <input name="since" defaultValue={filters.since} placeholder="30d or 2026-01-31" size={12} />
        </label>
        <label>
          Until
          <input name="until" defaultValue={filters.until} placeholder="now" size={12} />
        </label>
        <label>
          Principal
          <input name="principal" defaultValue={filters.principal} placeholder="everyone" />
        </label>
        <label>
          Connection
          <input name="connection" defaultValue={filters.connection} placeholder="every one" />
        </label>
        <label className="check">
          <input type="checkbox" name="unused" defaultChecked={filters.unused === 'true'} />
          Only rights never used
        </label>
        <button type="submit">Show</button>
      </form>

      {done && (
        <div className="notice" role="status">
          <p>
            {done.decision === 'certified'
              ? `Certified ${done.principal}'s access to ${done.connection}.`
              : `Revoked ${done.principal}'s access to ${done.connection}: ${
                  done.grantsRevoked.length === 0
                    ? 'no live grant to end.'
                    : `${done.grantsRevoked.length} live grant${done.grantsRevoked.length === 1 ? '' : 's'} ended; their sessions end within seconds.`
                }`}
          </p>
          <button type="button" onClick={() => setDone(undefined)}>
            OK
          </button>
        </div>
      )}

      <Show loaded={report} what="the access review">
        {(r) => (
          <>
            <p className="muted">
              From {when(r.since)} to {when(r.until)};{' '}
              {r.policy.enabled ? `policies ${r.policy.version?.slice(0, 12)}` : 'guardrails are off'}.{' '}
              <strong>
                {r.summary.rows} rows, {r.summary.flagged} flagged, {r.summary.certified} certified, {r.summary.revoked} revoked.
              </strong>
              {r.truncated && ' The window held more distinct statements than the review reads: usage is a lower bound.'}
            </p>
            {r.rows.length === 0 ? (
              <p className="muted">Nothing to review.</p>
            ) : (
              <table className="review">
                <thead>
                  <tr>
                    <th scope="col">Principal</th>
                    <th scope="col">Connection</th>
                    <th scope="col">Access</th>
                    <th scope="col">Policy allows</th>
                    <th scope="col">Granted</th>
                    <th scope="col">Used</th>
                    <th scope="col">Flags</th>
                    <th scope="col">Decision</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {r.rows.map((row) => {
                    const key = `${row.principal}\0${row.connection}`;
                    const current = deciding && `${deciding.principal}\0${deciding.connection}` === key ? deciding : undefined;
                    const open = (how: Deciding['how']) => () => {
                      setDone(undefined);
                      setDeciding({ principal: row.principal, connection: row.connection, how });
                    };
                    return (
                      <tr key={key} aria-label={`${row.principal} on ${row.connection}`}>
                        <th scope="row">
                          {row.principal}
                          <div className="muted">
                            {row.kind === 'service-account' ? 'service account' : 'user'}
                            {row.account === 'disabled' && (
                              <>
                                {' '}
                                <Badge kind="muted">disabled</Badge>
                              </>
                            )}
                            {row.account === 'none' && (
                              <>
                                {' '}
                                <Badge kind="muted">no account</Badge>
                              </>
                            )}
                          </div>
                        </th>
                        <td>{row.connection}</td>
                        <td title={row.access.why}>
                          <Access row={row} />
                        </td>
                        <td>
                          <Allows row={row} />
                        </td>
                        <td>
                          <Granted row={row} />
                        </td>
                        <td>
                          <Used row={row} />
                        </td>
                        <td className="wrap">
                          <Flags row={row} />
                        </td>
                        <td className="wrap">
                          {row.decision ? (
                            <>
                              <Badge kind={row.decision.decision === 'certified' ? 'ok' : 'bad'}>{row.decision.decision}</Badge>
                              <div className="muted">
                                by {row.decision.by}, {when(row.decision.at)}
                              </div>
                              <div>{row.decision.note}</div>
                            </>
                          ) : (
                            <span className="muted">—</span>
                          )}
                        </td>
                        <td className="actions">
                          {current ? (
                            <Decide deciding={current} onDone={decided} onCancel={() => setDeciding(undefined)} />
                          ) : (
                            <div className="row">
                              {row.principal === me.name ? (
                                <span className="muted" title="Another reviewer certifies your own access">
                                  your own
                                </span>
                              ) : (
                                <button
                                  type="button"
                                  onClick={open('certify')}
                                  aria-label={`Certify ${row.principal} on ${row.connection}`}
                                >
                                  Certify
                                </button>
                              )}
                              {mayRevoke && (
                                <button
                                  type="button"
                                  className="danger"
                                  onClick={open('revoke')}
                                  aria-label={`Revoke ${row.principal} on ${row.connection}`}
                                >
                                  Revoke
                                </button>
                              )}
                            </div>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
          </>
        )}
      </Show>
    </>
  );
}

function Access({ row }: { row: ReviewRow }) {
  const { access } = row;
  switch (access.via) {
    case 'at-once':
      return (
        <>
          <Badge kind="ok">at once</Badge> <span className="muted">up to {access.maxDuration}</span>
        </>
      );
    case 'approval':
      return (
        <>
          <Badge kind="warn">approval by {access.approvers}</Badge> <span className="muted">up to {access.maxDuration}</span>
        </>
      );
    case 'grant-only':
      return <Badge kind="info">local admin grants only</Badge>;
    case 'none':
      return (
        <>
          <Badge kind="muted">none</Badge>
          <div className="muted">{access.why}</div>
        </>
      );
  }
}

function Allows({ row }: { row: ReviewRow }) {
  if (row.statements.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="review-kinds" aria-label={`What policy allows ${row.principal} on ${row.connection}`}>
      {row.statements.map((s) => (
        <li key={s.kind} title={`${s.sql}: ${s.outcome}${s.policy ? ` (${s.policy})` : ''}`}>
          {s.outcome === 'allow' ? (
            <Badge kind="ok">{s.kind}</Badge>
          ) : s.outcome === 'approval' ? (
            <Badge kind="warn">{s.kind}: held</Badge>
          ) : (
            <Badge kind="muted">
              <s>{s.kind}</s>
            </Badge>
          )}
        </li>
      ))}
    </ul>
  );
}

function Granted({ row }: { row: ReviewRow }) {
  const g = row.grants;
  if (g.issued === 0 && g.live === 0) return <span className="muted">—</span>;
  return (
    <>
      {g.issued} issued{g.unused > 0 && <span className="muted">, {g.unused} unused</span>}
      {g.live > 0 && <div>{g.live} live now</div>}
      {g.grantedBy.length > 0 && <div className="muted">by {g.grantedBy.join(', ')}</div>}
    </>
  );
}

function Used({ row }: { row: ReviewRow }) {
  const u = row.usage;
  if (u.sessions === 0) return <span className="muted">nothing</span>;
  const categories = Object.entries(u.byCategory).filter(([, n]) => n > 0);
  const tables = [...u.tablesWritten.map((t) => `${t} (written)`), ...u.tablesRead.filter((t) => !u.tablesWritten.includes(t))];
  return (
    <>
      {u.sessions} session{u.sessions === 1 ? '' : 's'}
      {u.liveSessions > 0 && <span className="muted"> ({u.liveSessions} live)</span>}
      <div>
        {categories.map(([c, n]) => `${n} ${c}`).join(', ') || 'no statements'}
        {u.refused > 0 && <span className="muted">, {u.refused} refused</span>}
      </div>
      {tables.length > 0 && <div className="muted">tables: {tables.join(', ')}</div>}
    </>
  );
}

function Flags({ row }: { row: ReviewRow }) {
  if (row.flags.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="review-flags">
      {row.flags.map((f) => (
        <li key={f.code}>
          <Badge kind="warn">{f.code}</Badge> {f.message}
          <div className="muted">→ {f.suggestion}</div>
        </li>
      ))}
    </ul>
  );
}

function Decide({ deciding, onDone, onCancel }: { deciding: Deciding; onDone: (d: ReviewDecided) => void; onCancel: () => void }) {
  const [note, setNote] = useState('');
  const verb = deciding.how === 'certify' ? 'Certify' : 'Revoke';
  const { busy, error, submit } = useSubmit(async () => {
    const body = { principal: deciding.principal, connection: deciding.connection, note };
    return (await call<ReviewDecided>('POST', `/api/access/review/${deciding.how}`, { body })).body;
  }, onDone);
  return (
    <form
      className="inline-form"
      onSubmit={(e) => void submit(e)}
      onKeyDown={(e) => e.key === 'Escape' && onCancel()}
      aria-label={`${verb} ${deciding.principal} on ${deciding.connection}`}
    >
      <label>
        <span className="visually-hidden">Note</span>
        <input
          name="note"
          placeholder={deciding.how === 'certify' ? 'why it is still needed' : 'why it is taken away'}
          autoFocus
          value={note}
          onChange={(e) => setNote(e.target.value)}
        />
      </label>
      <button type="submit" className={deciding.how === 'revoke' ? 'danger' : 'primary'} disabled={busy}>
        {verb} now
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <Problem error={error} />
    </form>
  );
}
