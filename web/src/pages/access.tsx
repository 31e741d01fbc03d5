/**
 * Connections and my access: the connections I may ask for, asking for access (reason and
 * duration), the credential shown once with ready-made connection strings, my live grants
 * counting down to their expiry, revoking one, and my requests that wait for approval.
 */

import { useState, type FormEvent } from 'react';
import { ApiProblem, call, get, query } from '../api.ts';
import { Badge, CopyField, Countdown, PageTitle, Problem, Show, useLoad, useNow, useSubmit } from '../components.tsx';
import { clockTime, parseDuration, when } from '../format.ts';
import { useMe } from '../me.ts';
import type { AccessGranted, AccessPending, AccessRequestView, ConnectionView, GrantView } from '../types.ts';

const PRESETS = ['15m', '30m', '1h', '2h', '4h', '8h', '1d'];

export function AccessPage() {
  const me = useMe();
  const [connections] = useLoad((signal) => get<ConnectionView[]>('/api/connections', signal), 'connections');
  const [grants, reloadGrants] = useLoad(
    (signal) => get<{ grants: GrantView[] }>(`/api/access/grants${query({ principal: me.name })}`, signal),
    'grants',
  );
  const [pending, reloadPending] = useLoad(
    (signal) => get<{ requests: AccessRequestView[] }>(`/api/access/requests${query({ principal: me.name, status: 'pending' })}`, signal),
    'pending',
  );
  const [asking, setAsking] = useState<ConnectionView | undefined>();
  const [outcome, setOutcome] = useState<AccessGranted | AccessPending | undefined>();

  const done = (answer: AccessGranted | AccessPending) => {
    setAsking(undefined);
    setOutcome(answer);
    reloadGrants();
    reloadPending();
  };

  return (
    <>
      <PageTitle>My access</PageTitle>
      <p className="lead">
        Ask for access to a connection for a while; you get a short-lived password for your usual client (psql, JDBC, any PostgreSQL
        driver). It expires on its own, and you can give it back early.
      </p>

      {outcome?.status === 'granted' && <Credential granted={outcome} onDone={() => setOutcome(undefined)} />}
      {outcome?.status === 'pending' && (
        <div className="notice" role="status">
          <p>
            Your request <code>{outcome.request}</code> for <strong>{outcome.connection}</strong> ({outcome.duration}) waits for approval.
            The grant appears under “My live grants” once it is approved.
          </p>
          <button type="button" onClick={() => setOutcome(undefined)}>
            OK
          </button>
        </div>
      )}

      <section aria-labelledby="connections-title">
        <h2 id="connections-title">Connections</h2>
        <Show loaded={connections} what="the connections">
          {(list) =>
            list.length === 0 ? (
              <p className="muted">There are no connections you may ask for.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Connection</th>
                    <th scope="col">Type</th>
                    <th scope="col">Longest grant</th>
                    <th scope="col">Approval</th>
                    <th scope="col">
                      <span className="visually-hidden">Action</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((c) => (
                    <tr key={c.name}>
                      <th scope="row">{c.name}</th>
                      <td>{c.type}</td>
                      <td>{c.maxDuration}</td>
                      <td>
                        {c.approval === 'required' ? <Badge kind="warn">needs approval</Badge> : <Badge kind="ok">granted at once</Badge>}
                      </td>
                      <td className="actions">
                        <button
                          type="button"
                          onClick={() => (setAsking(c), setOutcome(undefined))}
                          aria-label={`Request access to ${c.name}`}
                        >
                          Request access
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          }
        </Show>
        {asking && <RequestForm connection={asking} onDone={done} onCancel={() => setAsking(undefined)} />}
      </section>

      <section aria-labelledby="grants-title">
        <h2 id="grants-title">My live grants</h2>
        <Show loaded={grants} what="your grants">
          {({ grants }) => <Grants grants={grants} onChange={reloadGrants} />}
        </Show>
      </section>

      <Show loaded={pending} what="your requests">
        {({ requests }) =>
          requests.length > 0 && (
            <section aria-labelledby="pending-title">
              <h2 id="pending-title">Waiting for approval</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Connection</th>
                    <th scope="col">Asked</th>
                    <th scope="col">For</th>
                    <th scope="col">Reason</th>
                    <th scope="col">Request</th>
                  </tr>
                </thead>
                <tbody>
                  {requests.map((r) => (
                    <tr key={r.request}>
                      <th scope="row">{r.connection}</th>
                      <td>{when(r.requestedAt)}</td>
                      <td>{r.duration}</td>
                      <td>{r.reason}</td>
                      <td>
                        <code>{r.request}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          )
        }
      </Show>
    </>
  );
}

function RequestForm({
  connection,
  onDone,
  onCancel,
}: {
  connection: ConnectionView;
  onDone: (answer: AccessGranted | AccessPending) => void;
  onCancel: () => void;
}) {
  const max = parseDuration(connection.maxDuration) ?? Number.POSITIVE_INFINITY;
  const choices = [...PRESETS.filter((p) => (parseDuration(p) ?? 0) < max), ...(Number.isFinite(max) ? [connection.maxDuration] : [])];
  const [duration, setDuration] = useState(choices.includes('1h') ? '1h' : (choices.at(-1) ?? '1h'));
  const [reason, setReason] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    const body = { connection: connection.name, duration, reason };
    return (await call<AccessGranted | AccessPending>('POST', '/api/access/requests', { body })).body;
  }, onDone);

  return (
    <form
      className="panel stack"
      onSubmit={(e) => void submit(e)}
      onKeyDown={(e) => e.key === 'Escape' && onCancel()}
      aria-labelledby="request-title"
    >
      <h3 id="request-title">Request access to {connection.name}</h3>
      <label>
        <span>
          Reason <span className="muted">(for the audit log and the approvers: a ticket, an incident)</span>
        </span>
        <textarea name="reason" required rows={2} maxLength={1000} autoFocus value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      <label>
        <span>
          For how long <span className="muted">(at most {connection.maxDuration})</span>
        </span>
        <select name="duration" value={duration} onChange={(e) => setDuration(e.target.value)}>
          {choices.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </label>
      {connection.approval === 'required' && <p className="muted">This connection needs an approver’s yes before the grant is made.</p>}
      <Problem error={error} />
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Asking…' : 'Request access'}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Credential({ granted, onDone }: { granted: AccessGranted; onDone: () => void }) {
  const now = useNow();
  const env = granted.connect ? Object.entries(granted.connect.env).map(([name, value]) => `export ${name}='${value}'`) : [];
  return (
    <section className="panel credential" aria-labelledby="credential-title" role="status">
      <h2 id="credential-title">Access granted to {granted.connection}</h2>
      <p>
        Until {clockTime(granted.expiresAt)} (<Countdown until={granted.expiresAt} now={now} /> left).{' '}
        <strong>This password is shown only now:</strong> copy what you need before you close this box.
      </p>
      <CopyField label="Password" value={granted.credential} />
      {granted.connect ? (
        <>
          <CopyField label="psql" value={`psql '${granted.connect.psql}'`} />
          <CopyField label="JDBC URL" value={granted.connect.jdbc} />
          <CopyField label="Environment (PG* variables)" value={env.join('\n')} multiline />
        </>
      ) : (
        <p className="muted">The gateway’s PostgreSQL listener is off, so there are no connection strings: use the password above.</p>
      )}
      <button type="button" onClick={onDone}>
        Done, I have copied it
      </button>
    </section>
  );
}

function Grants({ grants, onChange }: { grants: readonly GrantView[]; onChange: () => void }) {
  const now = useNow();
  const [revoking, setRevoking] = useState<string | undefined>();
  if (grants.length === 0) return <p className="muted">You hold no live grant. Request access to a connection above.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Connection</th>
          <th scope="col">Granted</th>
          <th scope="col">Expires in</th>
          <th scope="col">Reason</th>
          <th scope="col">
            <span className="visually-hidden">Action</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {grants.map((g) => (
          <tr key={g.grant}>
            <th scope="row">{g.connection}</th>
            <td title={g.grant}>
              {when(g.createdAt)} <span className="muted">by {g.grantedBy}</span>
            </td>
            <td>
              <Countdown until={g.expiresAt} now={now} />
            </td>
            <td>{g.reason ?? '—'}</td>
            <td className="actions">
              {revoking === g.grant ? (
                <Revoke grant={g} onDone={() => (setRevoking(undefined), onChange())} onCancel={() => setRevoking(undefined)} />
              ) : (
                <button type="button" onClick={() => setRevoking(g.grant)} aria-label={`Revoke the grant on ${g.connection}`}>
                  Revoke
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Revoke({ grant, onDone, onCancel }: { grant: GrantView; onDone: () => void; onCancel: () => void }) {
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await call('DELETE', `/api/access/grants/${encodeURIComponent(grant.grant)}${query({ reason: reason || 'given back' })}`);
      onDone();
    } catch (failure) {
      // Already expired or revoked: the list is out of date, not the person wrong.
      if (failure instanceof ApiProblem && failure.code === 'not-live') onDone();
      else setError(failure);
    }
  };
  return (
    <form className="inline-form" onSubmit={(e) => void submit(e)} onKeyDown={(e) => e.key === 'Escape' && onCancel()}>
      <label>
        <span className="visually-hidden">Why (optional)</span>
        <input placeholder="why (optional)" autoFocus value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      <button type="submit" className="danger">
        Revoke now
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <Problem error={error} />
    </form>
  );
}
