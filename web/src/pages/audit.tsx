/**
 * The audit log, for admins and auditors: whether the hash chain and its signed checkpoints
 * verify (first, and in plain words: verified, or broken at record N and why), then the records,
 * oldest first within the chosen period, filtered by action and subject, a page at a time.
 */

import { useRef, useState, type FormEvent } from 'react';
import { get, query } from '../api.ts';
import { Badge, PageTitle, Problem, Show, useLoad } from '../components.tsx';
import { when } from '../format.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import type { AuditRecord, AuditVerification } from '../types.ts';

interface Page {
  readonly records: AuditRecord[];
  readonly next: number | null;
}

const DEFAULT_SINCE = '24h';

export function AuditPage() {
  const { search, href } = useLocation();
  const filters = {
    action: search.get('action') ?? '',
    subject: search.get('subject') ?? '',
    // `all` stands for an emptied field (an absent one means the default).
    since: search.get('since') === 'all' ? '' : (search.get('since') ?? DEFAULT_SINCE),
    until: search.get('until') ?? '',
  };
  // The gateway's last verification if it is less than an hour old (reading a long log takes a
  // while); "Verify again" reads the log now.
  const fresh = useRef(false);
  const [verification, verify] = useLoad(
    (signal) => get<AuditVerification>(`/api/audit/verify${fresh.current ? '' : '?recent=1h'}`, signal),
    'verify',
  );
  const verifyAgain = () => {
    fresh.current = true;
    verify();
  };
  const [first] = useLoad((signal) => get<Page>(`/api/audit${query({ ...filters, limit: 100 })}`, signal), href);
  const [more, setMore] = useState<{ for: string; records: AuditRecord[]; next: number | null; error?: unknown }>();

  const apply = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const values = Object.fromEntries([...new FormData(event.currentTarget).entries()].map(([k, v]) => [k, String(v).trim()]));
    navigate(`/audit${query({ ...values, since: values['since'] || 'all' })}`);
  };

  /** This page with one more filter (a click on an action or a subject). */
  const filtered = (extra: Record<string, string>) => `/audit${query({ ...filters, since: filters.since || 'all', ...extra })}`;

  const loadMore = async (next: number) => {
    try {
      const page = await get<Page>(`/api/audit${query({ ...filters, limit: 100, after: next })}`);
      setMore((before) => ({ for: href, records: [...(before?.for === href ? before.records : []), ...page.records], next: page.next }));
    } catch (error) {
      setMore((before) => ({ for: href, records: before?.for === href ? before.records : [], next, error }));
    }
  };

  return (
    <>
      <PageTitle>Audit log</PageTitle>
      <Show loaded={verification} what="the verification">
        {(v) => <Verification v={v} onAgain={verifyAgain} />}
      </Show>

      <form className="filters" onSubmit={apply} aria-label="Filter audit records" key={href}>
        <label>
          Action
          <input name="action" defaultValue={filters.action} placeholder="grant.issued, login.failed…" />
        </label>
        <label>
          Subject
          <input name="subject" defaultValue={filters.subject} placeholder="a principal, grant or session id" />
        </label>
        <label>
          Since
          <input name="since" defaultValue={filters.since} placeholder="7d or 2026-01-31" size={12} />
        </label>
        <label>
          Until
          <input name="until" defaultValue={filters.until} placeholder="now" size={12} />
        </label>
        <button type="submit">Show</button>
      </form>
      <p className="muted">
        Oldest first. Since and until take a duration back from now (<code>24h</code>, <code>7d</code>) or a date (<code>2026-01-31</code>);
        leave since empty for the whole log.
      </p>

      <Show loaded={first} what="the audit records">
        {(page) => {
          const extra = more?.for === href ? more : undefined;
          const records = [...page.records, ...(extra?.records ?? [])];
          const next = extra ? extra.next : page.next;
          if (records.length === 0) return <p className="muted">No records match.</p>;
          return (
            <>
              <table className="audit">
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">Time</th>
                    <th scope="col">Actor</th>
                    <th scope="col">Action</th>
                    <th scope="col">Subject</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {records.map((r) => (
                    <tr key={r.seq}>
                      <td className="num">{r.seq}</td>
                      <td>{when(r.time)}</td>
                      <td>{r.actor}</td>
                      <td>
                        <Link to={filtered({ action: r.action })} title={`Only ${r.action} records`}>
                          <code>{r.action}</code>
                        </Link>
                      </td>
                      <td className="wrap">
                        <Link to={filtered({ subject: r.subject })} title="Only records about this subject">
                          {r.subject}
                        </Link>
                      </td>
                      <td>{r.outcome === 'success' ? <Badge kind="ok">success</Badge> : <Badge kind="bad">failure</Badge>}</td>
                      <td className="wrap">
                        <Details details={r.details} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <Problem error={extra?.error} />
              {next !== null && (
                <button type="button" onClick={() => void loadMore(next)}>
                  Load more records
                </button>
              )}
            </>
          );
        }}
      </Show>
    </>
  );
}

function Verification({ v, onAgain }: { v: AuditVerification; onAgain: () => void }) {
  return (
    <section className={v.ok ? 'verify verify-ok' : 'verify verify-broken'} role="status" aria-live="polite">
      {v.ok ? (
        <p>
          <strong>✓ Audit log verified</strong> at {when(v.verifiedAt)}: {v.records} records, hash chain intact up to #{v.head.seq};{' '}
          {v.checkpoints} signed checkpoint
          {v.checkpoints === 1 ? '' : 's'}
          {v.lastCheckpoint ? `, the last at #${v.lastCheckpoint.seq} (${when(v.lastCheckpoint.time)})` : ''}.
        </p>
      ) : (
        <p>
          <strong>✗ Audit log broken at record #{v.problem?.seq ?? '?'}</strong> (verified at {when(v.verifiedAt)},{' '}
          {v.problem?.kind === 'checkpoint' ? 'signed checkpoint' : 'hash chain'}): {v.problem?.message ?? 'no detail'}. Records after it
          cannot be trusted; see docs/audit.md.
        </p>
      )}
      <button type="button" onClick={onAgain}>
        Verify again
      </button>
    </section>
  );
}

function Details({ details }: { details: Readonly<Record<string, unknown>> }) {
  const entries = Object.entries(details);
  if (entries.length === 0) return <span className="muted">—</span>;
  const short = entries
    .slice(0, 3)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return (
    <details>
      <summary>{short.length > 80 ? `${short.slice(0, 80)}…` : short}</summary>
      <pre>{JSON.stringify(details, null, 2)}</pre>
    </details>
  );
}
