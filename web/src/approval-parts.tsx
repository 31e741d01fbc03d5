/**
 * What the inbox and the detail page both show of an approval request: who asked, where, the held
 * statement exactly as it would run (with its parameters), why policy held it, who may decide, how
 * long it has left, the blast-radius preview when the gateway gives one; then either the decision
 * (who, when, why) or the Approve and Deny forms. Deciding is for the approver and admin roles;
 * the API checks the approver group and refuses one's own request, and its refusal is shown as
 * the gateway wrote it.
 */

import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { ApiProblem, call } from './api.ts';
import { useFeed } from './approvals-feed.ts';
import { Badge, Countdown, Problem } from './components.tsx';
import { when } from './format.ts';
import { hasAnyRole } from './me.ts';
import { Link } from './router.tsx';
import type { ApprovalView, WhoAmI } from './types.ts';

export type Action = 'approve' | 'deny';

/** Whether to offer the decision buttons: the API decides the rest (group, own request). */
export function mayDecide(me: WhoAmI): boolean {
  return hasAnyRole(me, ['approver', 'admin']);
}

/** Whether `me` may open the session the approval was held in (admins and auditors, or one's own). */
export function seesSession(me: WhoAmI, approval: ApprovalView): boolean {
  return hasAnyRole(me, ['admin', 'auditor']) || approval.requester === me.name;
}

const STATUS: Record<ApprovalView['status'], { kind: 'ok' | 'bad' | 'warn' | 'muted' | 'info'; label: string }> = {
  pending: { kind: 'info', label: 'pending' },
  approved: { kind: 'ok', label: 'approved' },
  denied: { kind: 'bad', label: 'denied' },
  expired: { kind: 'muted', label: 'expired' },
  cancelled: { kind: 'muted', label: 'cancelled' },
};

export function StatusBadge({ approval }: { approval: ApprovalView }) {
  const { kind, label } = STATUS[approval.status];
  return <Badge kind={kind}>{label}</Badge>;
}

/** "update orders …" or "access to app for 1h": what is asked, in a few words. */
export function summary(approval: ApprovalView): string {
  if (approval.kind === 'access') return `access to ${approval.connection}${approval.duration ? ` for ${approval.duration}` : ''}`;
  return approval.statement ?? '(no statement)';
}

/**
 * The held statement or access request, its parameters, why it was held and the preview. `compact`:
 * who, where and when on one line (the inbox); else as a grid of facts (the detail page).
 */
export function Asked({ approval, me, compact = false }: { approval: ApprovalView; me: WhoAmI; compact?: boolean }) {
  const session =
    approval.session &&
    (seesSession(me, approval) ? (
      <Link to={`/sessions/${encodeURIComponent(approval.session)}`}>
        <code>{approval.session}</code>
      </Link>
    ) : (
      <code>{approval.session}</code>
    ));
  return (
    <>
      {compact ? (
        <p className="asked">
          <strong className="requester">{approval.requester}</strong> on <strong>{approval.connection}</strong>
          <span className="muted"> · asked {when(approval.createdAt)}</span>
          <span className="muted">
            {' '}
            · approvers: group <strong>{approval.approvers}</strong>
          </span>
          {approval.kind === 'access' && approval.duration && <span className="muted"> · for {approval.duration}</span>}
        </p>
      ) : (
        <dl className="facts approval-facts">
          <div>
            <dt>Asked by</dt>
            <dd className="requester">{approval.requester}</dd>
          </div>
          <div>
            <dt>Connection</dt>
            <dd>{approval.connection}</dd>
          </div>
          <div>
            <dt>Asked</dt>
            <dd>{when(approval.createdAt)}</dd>
          </div>
          <div>
            <dt>Approvers</dt>
            <dd>
              group <strong>{approval.approvers}</strong>
            </dd>
          </div>
          {session && (
            <div>
              <dt>Session</dt>
              <dd>{session}</dd>
            </div>
          )}
          {approval.kind === 'access' && (
            <div>
              <dt>Access for</dt>
              <dd>
                {approval.duration ?? '—'}
                {approval.request && (
                  <>
                    {' '}
                    <span className="muted">
                      (request <code>{approval.request}</code>)
                    </span>
                  </>
                )}
              </dd>
            </div>
          )}
        </dl>
      )}
      {approval.kind === 'statement' && (
        <>
          <h3 className="label">Statement, exactly as it would run</h3>
          <pre className="sql held-statement">
            <code>{approval.statement}</code>
          </pre>
          {approval.params && approval.params.length > 0 && (
            <>
              <h3 className="label">Parameters</h3>
              <dl className="params">
                {approval.params.map((value, i) => (
                  <div key={i}>
                    <dt>${i + 1}</dt>
                    <dd>{value === null ? <span className="null">NULL</span> : <code>{value}</code>}</dd>
                  </div>
                ))}
              </dl>
            </>
          )}
        </>
      )}
      <p className="why-held">
        <span className="label">Why held: </span>
        {approval.reason}
        {approval.policy && !approval.reason.includes(approval.policy) && (
          <span className="muted">
            {' '}
            (policy <code>{approval.policy}</code>)
          </span>
        )}
      </p>
      {approval.preview && <BlastRadius preview={approval.preview} />}
    </>
  );
}

function BlastRadius({ preview }: { preview: NonNullable<ApprovalView['preview']> }) {
  if (preview.error !== undefined)
    return (
      <p className="preview preview-unknown">
        <span className="label">Blast radius: </span>
        unknown <span className="muted">({preview.error})</span>
      </p>
    );
  const text = preview.text ?? (preview.rows !== undefined ? `about ${preview.rows.toLocaleString('en')} rows would change` : undefined);
  if (text === undefined) return null;
  return (
    <p className="preview">
      <span className="label">Blast radius: </span>
      <strong>{text}</strong> <span className="muted">(the planner’s estimate, from EXPLAIN on the target)</span>
    </p>
  );
}

/** How a request ended: who decided, when and why; or how long it has left. */
export function Outcome({ approval, now }: { approval: ApprovalView; now: number }) {
  if (approval.status === 'pending')
    return (
      <p className="outcome">
        <StatusBadge approval={approval} /> expires in <Countdown until={approval.expiresAt} now={now} />
      </p>
    );
  const verb = { approved: 'Approved', denied: 'Denied', expired: 'Expired', cancelled: 'Cancelled' }[approval.status];
  return (
    <p className={`outcome outcome-${approval.status}`}>
      <StatusBadge approval={approval} /> {verb}
      {approval.decidedBy && approval.status !== 'expired' && (
        <>
          {' '}
          by <strong>{approval.decidedBy}</strong>
        </>
      )}{' '}
      {approval.decidedAt && <>at {when(approval.decidedAt)}</>}
      {approval.decisionReason && <>: {approval.decisionReason}</>}
    </p>
  );
}

/**
 * The Approve and Deny buttons, and the form each opens (a reason, optional to approve and required
 * to deny). `open` is lifted so that the a and d keys can open them.
 */
export function Decide({
  approval,
  open,
  onOpen,
  onDecided,
}: {
  approval: ApprovalView;
  open: Action | undefined;
  onOpen: (action: Action | undefined) => void;
  onDecided?: (decided: ApprovalView) => void;
}) {
  const buttons = useRef<HTMLDivElement>(null);
  const close = () => {
    onOpen(undefined);
    // Back where the keyboard was, once the buttons are back; unless a key pressed meanwhile (the
    // browser may handle it before this timer) has put the focus somewhere already.
    setTimeout(() => {
      const active = document.activeElement;
      if (active === null || active === document.body) buttons.current?.querySelector<HTMLButtonElement>('button')?.focus();
    }, 0);
  };
  if (open) return <DecisionForm approval={approval} action={open} onCancel={close} onDecided={onDecided} />;
  return (
    <div className="row decide" ref={buttons}>
      <button
        type="button"
        className="primary"
        onClick={() => onOpen('approve')}
        aria-label={`Approve #${approval.id}`}
        aria-keyshortcuts="a"
      >
        Approve
      </button>
      <button type="button" className="danger" onClick={() => onOpen('deny')} aria-label={`Deny #${approval.id}`} aria-keyshortcuts="d">
        Deny
      </button>
    </div>
  );
}

function DecisionForm({
  approval,
  action,
  onCancel,
  onDecided,
}: {
  approval: ApprovalView;
  action: Action;
  onCancel: () => void;
  onDecided: ((decided: ApprovalView) => void) | undefined;
}) {
  const feed = useFeed();
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const field = useRef<HTMLTextAreaElement>(null);
  useEffect(() => field.current?.focus(), []);
  const deny = action === 'deny';
  const id = `reason-${action}-${approval.id}`;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const why = reason.trim();
    if (deny && why === '') {
      setError(new Error('A denial needs a reason: the requester is told it.'));
      field.current?.focus();
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const answer = await call<ApprovalView>('POST', `/api/approvals/${approval.id}/${action}`, {
        body: why === '' ? {} : { reason: why },
      });
      feed.put([answer.body]);
      onDecided?.(answer.body);
    } catch (failure) {
      setError(failure);
      setBusy(false);
      // Decided meanwhile by someone else, or expired: show how it ended.
      if (failure instanceof ApiProblem && failure.code === 'not-pending') void feed.sync();
    }
  };

  return (
    <form
      className={`decision-form decision-${action}`}
      noValidate
      onSubmit={(e) => void submit(e)}
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.stopPropagation();
          onCancel();
        } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void submit(e);
      }}
      aria-label={`${deny ? 'Deny' : 'Approve'} #${approval.id}`}
    >
      <label htmlFor={id}>
        {deny ? (
          <span>
            Reason <strong>(required)</strong> <span className="muted">— the requester is told it</span>
          </span>
        ) : (
          <span>
            Reason <span className="muted">(optional: a ticket, for the audit log)</span>
          </span>
        )}
      </label>
      <textarea
        id={id}
        ref={field}
        rows={2}
        maxLength={2000}
        required={deny}
        aria-required={deny}
        value={reason}
        onChange={(e) => setReason(e.target.value)}
      />
      <Problem error={error} />
      <div className="row">
        <button type="submit" className={deny ? 'danger' : 'primary'} disabled={busy}>
          {busy ? (deny ? 'Denying…' : 'Approving…') : deny ? `Deny #${approval.id}` : `Approve #${approval.id}`}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <span className="muted">Ctrl+Enter {deny ? 'denies' : 'approves'} · Escape cancels</span>
      </div>
    </form>
  );
}

/** A short line of the keys a page answers to. */
export function Keys({ children }: { children: ReactNode }) {
  return <p className="keys muted">{children}</p>;
}

/** Whether a key press is meant for the page (not typed into a field, no modifier). */
export function isPageKey(event: KeyboardEvent): boolean {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return false;
  const target = event.target as HTMLElement | null;
  if (!target) return true;
  return !(target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}
