/**
 * The app's frame: sign-in when there is no session, else the navigation (only the pages the
 * signed-in roles may use, from `GET /api/whoami`) and the page the path names.
 */

import { useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { get } from './api.ts';
import { ApprovalsFeed, FeedContext } from './approvals-feed.ts';
import { currentSession, signOut, subscribe } from './auth.ts';
import { PageTitle, Show, useLoad } from './components.tsx';
import { hasAnyRole, MeContext } from './me.ts';
import { CALLBACK_PATH } from './oidc.ts';
import { CallbackPage, SignInPage } from './pages/sign-in.tsx';
import { Link, match, navigate, useLocation } from './router.tsx';
import { ROUTES, START_PAGE } from './routes.tsx';
import type { WhoAmI } from './types.ts';

export function App() {
  const session = useSyncExternalStore(subscribe, currentSession);
  const location = useLocation();

  const signingIn = location.path === '/signin';
  useEffect(() => {
    if (location.path === CALLBACK_PATH) return;
    if (!session && !signingIn) {
      const next = location.path === '/' ? '' : `?next=${encodeURIComponent(location.href)}`;
      navigate(`/signin${next}`, { replace: true });
    } else if (session && (signingIn || location.path === '/')) {
      navigate(START_PAGE, { replace: true });
    }
  }, [session, signingIn, location.path, location.href]);

  if (location.path === CALLBACK_PATH)
    return (
      <Bare>
        <CallbackPage />
      </Bare>
    );
  if (!session || signingIn)
    return (
      <Bare>
        <SignInPage />
      </Bare>
    );
  // A new principal, a new whoami (the session token changes at each refresh; the name does not).
  return <SignedIn key={session.principal} principal={session.principal} />;
}

function Bare({ children }: { children: ReactNode }) {
  return (
    <>
      <header className="top">
        <span className="brand">Drawbridge</span>
      </header>
      <main id="main">{children}</main>
    </>
  );
}

function SignedIn({ principal }: { principal: string }) {
  const [me] = useLoad((signal) => get<WhoAmI>('/api/whoami', signal), principal);
  const location = useLocation();
  // The approvals this principal may see, live on every page (the nav badge counts the pending).
  const [feed] = useState(() => new ApprovalsFeed());
  useEffect(() => feed.start(), [feed]);
  return (
    <FeedContext.Provider value={feed}>
      <Show loaded={me} what="who you are">
        {(me) => {
          const visible = ROUTES.filter((r) => r.nav && hasAnyRole(me, r.roles));
          const found = ROUTES.map((route) => ({ route, params: match(route.path, location.path) })).find((m) => m.params);
          return (
            <MeContext.Provider value={me}>
              <a className="skip-link" href="#main">
                Skip to content
              </a>
              <header className="top">
                <Link to={START_PAGE} className="brand">
                  Drawbridge
                </Link>
                <nav aria-label="Main">
                  <ul>
                    {visible.map((r) => {
                      const current = location.path === r.path || location.path.startsWith(`${r.path}/`);
                      return (
                        <li key={r.path}>
                          <Link to={r.path} aria-current={current ? 'page' : undefined}>
                            {r.nav}
                            {r.badge && <r.badge />}
                          </Link>
                        </li>
                      );
                    })}
                  </ul>
                </nav>
                <div className="me">
                  <span title={`signed in via ${me.via}`}>
                    {me.name}
                    <span className="muted"> · {me.roles.join(', ') || 'no roles'}</span>
                  </span>
                  <button type="button" onClick={() => void signOut()}>
                    Sign out
                  </button>
                </div>
              </header>
              <main id="main" key={found?.route.path ?? 'none'}>
                {!found ? (
                  <>
                    <PageTitle>No such page</PageTitle>
                    <p>
                      Nothing lives at <code>{location.path}</code>. <Link to={START_PAGE}>Go to My access</Link>.
                    </p>
                  </>
                ) : !hasAnyRole(me, found.route.roles) ? (
                  <>
                    <PageTitle>Not for your roles</PageTitle>
                    <p>
                      This page needs one of the roles {found.route.roles!.join(', ')}; you have {me.roles.join(', ') || 'none'}. An
                      administrator can change your roles.
                    </p>
                  </>
                ) : (
                  found.route.page(found.params!)
                )}
              </main>
            </MeContext.Provider>
          );
        }}
      </Show>
    </FeedContext.Provider>
  );
}
