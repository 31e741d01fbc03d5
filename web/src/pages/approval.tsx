/**
 * One approval request, at the address the held client's NOTICE gives (`/approvals/<id>`): who
 * asked, where, the statement exactly as it would run and its parameters, why policy held it, the
 * approver group, the time left, the blast-radius preview; Approve and Deny (keys a and d) for
 * approvers and admins, or how it ended. It follows the live feed, so a decision taken elsewhere
 * shows at once. Someone who is not signed in comes back here after signing in.
 */

import { useEffect, useState } from 'react';
import { get } from '../api.ts';
import { Asked, Decide, isPageKey, Keys, mayDecide, Outcome, type Action } from '../approval-parts.tsx';
import { useApprovals, useFeed } from '../approvals-feed.ts';
import { PageTitle, Show, useLoad, useNow } from '../components.tsx';
import { useMe } from '../me.ts';
import { Link } from '../router.tsx';
import type { ApprovalView } from '../types.ts';

export function ApprovalPage({ id }: { id: string }) {
  const feed = useFeed();
  const [loaded] = useLoad(
    (signal) =>
      get<ApprovalView>(`/api/approvals/${encodeURIComponent(id)}`, signal).then((view) => {
        feed.put([view]);
        return view;
      }),
    id,
  );
  return (
    <>
      <p className="breadcrumb">
        <Link to="/approvals">← Approvals</Link>
      </p>
      <PageTitle>Approval #{id}</PageTitle>
      <Show loaded={loaded} what="the approval">
        {(first) => <One key={first.id} first={first} />}
      </Show>
    </>
  );
}

function One({ first }: { first: ApprovalView }) {
  const me = useMe();
  const now = useNow();
  // The latest known state: a decision made here, in another tab or by another approver.
  const approval = useApprovals().approvals.get(first.id) ?? first;
  const deciding = mayDecide(me) && approval.status === 'pending';
  const [open, setOpen] = useState<Action | undefined>();

  useEffect(() => {
    if (!deciding) return;
    const onKey = (event: KeyboardEvent) => {
      if (!isPageKey(event) || (event.key !== 'a' && event.key !== 'd')) return;
      event.preventDefault();
      setOpen(event.key === 'a' ? 'approve' : 'deny');
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [deciding]);

  return (
    <article className="approval-detail" aria-label={`Approval #${approval.id}`}>
      <p className="lead">
        {approval.kind === 'access'
          ? `${approval.requester} asks for access to ${approval.connection}.`
          : `${approval.requester} ran a statement on ${approval.connection} that policy holds until someone of ${approval.approvers} decides; their session waits for the answer.`}
      </p>
      <Outcome approval={approval} now={now} />
      <Asked approval={approval} me={me} />
      {deciding && (
        <section className="panel decide-panel" aria-label="Decide">
          <Decide approval={approval} open={open} onOpen={setOpen} onDecided={() => setOpen(undefined)} />
          <Keys>
            Keys: <kbd>a</kbd> approve · <kbd>d</kbd> deny
          </Keys>
        </section>
      )}
      {approval.status === 'approved' && approval.kind === 'statement' && (
        <p className="muted">
          The statement runs once, exactly as shown, in {approval.requester}’s session; running it again is a new request.
        </p>
      )}
    </article>
  );
}
