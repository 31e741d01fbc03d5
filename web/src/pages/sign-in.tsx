/** Sign in: a local account's name and password, or the OIDC provider when the gateway has one. */

import { useEffect, useState, type FormEvent } from 'react';
import { call, get } from '../api.ts';
import { endReason, startSession, type IssuedSession } from '../auth.ts';
import { PageTitle, Problem } from '../components.tsx';
import { navigate, useLocation } from '../router.tsx';
import { finishOidcSignIn, providerName, startOidcSignIn } from '../oidc.ts';
import type { OidcSettings } from '../types.ts';

/** Where to go after signing in: `?next=` when it is a page of this app, else the start page. */
function nextOf(search: URLSearchParams): string {
  const next = search.get('next');
  // Only a path of this origin: never `//host` or `/\host`, which a browser reads as another site.
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/access';
}

export function SignInPage() {
  const { search } = useLocation();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [oidc, setOidc] = useState<OidcSettings | undefined>();
  const ended = endReason();

  useEffect(() => {
    // 404 oidc-not-configured: local accounts only, nothing to say about it.
    get<OidcSettings>('/api/auth/oidc').then(setOidc, () => setOidc(undefined));
  }, []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const answer = await call<IssuedSession>('POST', '/api/auth/login', { body: { username, password } });
      startSession(answer.body);
      navigate(nextOf(search), { replace: true });
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  const withProvider = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await startOidcSignIn(oidc!, nextOf(search));
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <div className="sign-in">
      <PageTitle>Sign in to Drawbridge</PageTitle>
      {ended && (
        <p className="notice" role="status">
          {ended}
        </p>
      )}
      <Problem error={error} />
      {oidc && (
        <>
          <button type="button" className="primary wide" onClick={() => void withProvider()} disabled={busy}>
            Sign in with {providerName(oidc)}
          </button>
          <p className="divider">
            <span>or with a local account</span>
          </p>
        </>
      )}
      <form onSubmit={(e) => void submit(e)} className="stack">
        <label>
          User name
          <input
            name="username"
            autoComplete="username"
            required
            autoFocus={!oidc}
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" className={oidc ? '' : 'primary'} disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}

/** Where the provider sends the browser back: finish the sign-in, then go where the person was going. */
export function CallbackPage() {
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let cancelled = false;
    finishOidcSignIn().then(
      ({ session, next }) => {
        if (cancelled) return;
        startSession(session);
        // Replace: the code in this URL is spent, and back must not come here again.
        navigate(next, { replace: true });
      },
      (failure: unknown) => !cancelled && setError(failure),
    );
    return () => {
      cancelled = true;
    };
  }, []);
  return (
    <div className="sign-in">
      <PageTitle>{error ? 'Sign-in did not finish' : 'Signing you in…'}</PageTitle>
      <Problem error={error} />
      {error !== undefined && (
        <p>
          <a href="/signin">Back to sign-in</a>
        </p>
      )}
    </div>
  );
}
