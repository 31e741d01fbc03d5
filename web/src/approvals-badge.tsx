/** The number of pending approvals, beside "Approvals" in the navigation and in the tab's title. */

import { useEffect } from 'react';
import { pendingOf, useApprovals } from './approvals-feed.ts';

export function PendingBadge() {
  const count = pendingOf(useApprovals()).length;
  useEffect(() => {
    document.title = count > 0 ? `(${count}) Drawbridge` : 'Drawbridge';
    return () => void (document.title = 'Drawbridge');
  }, [count]);
  if (count === 0) return null;
  return (
    <span className="nav-badge" title={`${count} waiting for a decision`}>
      {count}
      <span className="visually-hidden"> pending</span>
    </span>
  );
}
