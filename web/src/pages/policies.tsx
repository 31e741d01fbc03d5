/**
 * Guardrails, for admins, approvers and auditors: what the policies in force decide for a
 * statement sent by a principal on a connection (the verdict, each statement's classification and
 * the deciding policies, the same path as the data path and `drawbridge policy test`), and the
 * policy files in force. Nothing here changes policy: files are deployed as files.
 */

import { useState, type FormEvent } from 'react';
import { call, get } from '../api.ts';
import { Badge, PageTitle, Problem, Show, useLoad } from '../components.tsx';
import { useMe } from '../me.ts';
import type { ConnectionView, PolicyFiles, PolicyOutcome, PolicyTestResult } from '../types.ts';

export function PoliciesPage() {
  const [files] = useLoad((signal) => get<PolicyFiles>('/api/policies', signal), 'policies');
  const [connections] = useLoad((signal) => get<ConnectionView[]>('/api/connections', signal), 'connections');
  return (
    <>
      <PageTitle>Policies</PageTitle>
      <p className="lead">Try a statement against the policies in force before anyone runs it, and read the policies themselves.</p>
      <section aria-labelledby="test-title">
        <h2 id="test-title">Test a statement</h2>
        <Show loaded={connections} what="the connections">
          {(list) => <TestForm connections={list} />}
        </Show>
      </section>
      <section aria-labelledby="files-title">
        <h2 id="files-title">Policies in force</h2>
        <Show loaded={files} what="the policies">
          {(p) =>
            !p.enabled ? (
              <p className="notice">Guardrails are off on this gateway (policy.enabled: false): every statement is allowed.</p>
            ) : (
              <>
                <p className="muted">
                  Version <code>{p.version}</code> · {p.files.length} file{p.files.length === 1 ? '' : 's'}
                </p>
                {p.files.map((f) => (
                  <details key={f.file} className="policy-file" open={p.files.length === 1 && f.text.split('\n').length <= 60}>
                    <summary>
                      <code>{f.file}</code>
                    </summary>
                    <pre>{f.text}</pre>
                  </details>
                ))}
              </>
            )
          }
        </Show>
      </section>
    </>
  );
}

function TestForm({ connections }: { connections: readonly ConnectionView[] }) {
  const me = useMe();
  const [connection, setConnection] = useState(connections[0]?.name ?? '');
  const [principal, setPrincipal] = useState(me.name);
  const [kind, setKind] = useState<'user' | 'service-account'>('user');
  const [groups, setGroups] = useState('');
  const [sql, setSql] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<PolicyTestResult | undefined>();

  const submit = async (event?: FormEvent) => {
    event?.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = {
        connection,
        principal,
        kind,
        groups: groups
          .split(',')
          .map((g) => g.trim())
          .filter(Boolean),
        sql,
      };
      setResult((await call<PolicyTestResult>('POST', '/api/policies/test', { body })).body);
    } catch (failure) {
      setResult(undefined);
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <form className="stack policy-test" onSubmit={(e) => void submit(e)}>
        <div className="filters">
          <label>
            Connection
            <select name="connection" value={connection} onChange={(e) => setConnection(e.target.value)} required>
              {connections.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            Principal
            <input name="principal" value={principal} onChange={(e) => setPrincipal(e.target.value)} required />
          </label>
          <label>
            Kind
            <select name="kind" value={kind} onChange={(e) => setKind(e.target.value as 'user' | 'service-account')}>
              <option value="user">person</option>
              <option value="service-account">service account (agent)</option>
            </select>
          </label>
          <label>
            <span>
              Groups <span className="muted">(comma-separated)</span>
            </span>
            <input name="groups" value={groups} onChange={(e) => setGroups(e.target.value)} placeholder="dba, oncall" />
          </label>
        </div>
        <label>
          <span>
            SQL <span className="muted">(Ctrl+Enter tests it)</span>
          </span>
          <textarea
            name="sql"
            className="code"
            rows={5}
            required
            spellCheck={false}
            value={sql}
            placeholder="UPDATE orders SET status = 'refunded' WHERE id = 42"
            onChange={(e) => setSql(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
        </label>
        <div className="row">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Testing…' : 'Test'}
          </button>
        </div>
      </form>
      <Problem error={error} />
      {result && <TestResult result={result} />}
    </>
  );
}

function TestResult({ result }: { result: PolicyTestResult }) {
  const allowed = result.verdict.outcome === 'allow';
  return (
    <section className={allowed ? 'verdict verdict-allow' : 'verdict verdict-deny'} role="status" aria-labelledby="verdict-title">
      <h3 id="verdict-title">
        Verdict: {allowed ? 'allowed' : 'denied'}
        {result.verdict.policy && (
          <span className="muted">
            {' '}
            by <code>{result.verdict.policy}</code>
          </span>
        )}
      </h3>
      {result.verdict.reason && <p>{result.verdict.reason}</p>}
      {result.parseError && (
        <p className="statement-error">Could not parse: {result.parseError} (what cannot be parsed is not allowed by default).</p>
      )}
      {result.decisions.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Statement, as classified</th>
              <th scope="col">Outcome</th>
              <th scope="col">Deciding policies</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {result.decisions.map((d, i) => (
              <tr key={i}>
                <td>
                  <Classification statement={d.statement} />
                </td>
                <td>
                  <OutcomeBadge outcome={d.outcome} />
                </td>
                <td>{[...(d.outcome.policies ?? []), ...(d.outcome.policy ? [d.outcome.policy] : [])].filter(unique).join(', ') || '—'}</td>
                <td>{d.outcome.reason ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted">
        Policy version <code>{result.version}</code>
      </p>
    </section>
  );
}

function unique<T>(value: T, index: number, all: readonly T[]): boolean {
  return all.indexOf(value) === index;
}

function OutcomeBadge({ outcome }: { outcome: PolicyOutcome }) {
  if (outcome.outcome === 'allow') return <Badge kind="ok">allow</Badge>;
  if (outcome.outcome === 'deny') return <Badge kind="bad">deny</Badge>;
  return <Badge kind="warn">needs approval{outcome.approvers ? ` (${outcome.approvers})` : ''}</Badge>;
}

function Classification({ statement }: { statement: Readonly<Record<string, unknown>> }) {
  const entries = Object.entries(statement).filter(([, v]) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0));
  return (
    <dl className="classification">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}
