/** Pieces every page uses: loading a resource, showing a refusal, copying a value, a live countdown. */

import { useCallback, useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { ApiProblem } from './api.ts';
import { remaining } from './format.ts';

export type Loaded<T> =
  { readonly state: 'loading' } | { readonly state: 'failed'; readonly error: unknown } | { readonly state: 'done'; readonly value: T };

/** Loads `load()` when `key` changes; `reload` loads it again. An answer for an older key is dropped. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, key: string): [Loaded<T>, () => void] {
  const [loaded, setLoaded] = useState<Loaded<T>>({ state: 'loading' });
  const [round, setRound] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setLoaded((before) => (before.state === 'done' ? before : { state: 'loading' }));
    latest
      .current(controller.signal)
      .then((value) => !controller.signal.aborted && setLoaded({ state: 'done', value }))
      .catch((error: unknown) => !controller.signal.aborted && setLoaded({ state: 'failed', error }));
    return () => controller.abort();
  }, [key, round]);
  return [loaded, useCallback(() => setRound((n) => n + 1), [])];
}

/** A refusal or failure, with the problem's detail as the gateway wrote it. */
export function Problem({ error, title }: { error: unknown; title?: string }) {
  if (error === undefined || error === null) return null;
  const detail = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiProblem && error.status > 0 ? `${error.status} ${error.code}` : undefined;
  return (
    <div className="problem" role="alert">
      {title && <strong>{title}: </strong>}
      {detail}
      {code && <span className="problem-code"> ({code})</span>}
    </div>
  );
}

/** What a Loaded shows while it is not done; `children` renders the value. */
export function Show<T>({ loaded, children, what }: { loaded: Loaded<T>; children: (value: T) => ReactNode; what: string }) {
  if (loaded.state === 'loading')
    return (
      <p className="muted" aria-live="polite">
        Loading {what}…
      </p>
    );
  if (loaded.state === 'failed') return <Problem error={loaded.error} title={`Could not load ${what}`} />;
  return <>{children(loaded.value)}</>;
}

/** A read-only value with a Copy button; the value can also be selected by hand. */
export function CopyField({ label, value, multiline = false }: { label: string; value: string; multiline?: boolean }) {
  const [copied, setCopied] = useState<'yes' | 'no' | undefined>();
  const field = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const id = `copy-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied('yes');
    } catch {
      // No clipboard (plain http on another host than localhost): select it for Ctrl+C instead.
      field.current?.select();
      setCopied('no');
    }
    setTimeout(() => setCopied(undefined), 2500);
  };
  return (
    <div className="copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-row">
        {multiline ? (
          <textarea
            id={id}
            ref={field}
            readOnly
            value={value}
            rows={value.split('\n').length}
            spellCheck={false}
            onFocus={(e) => e.target.select()}
          />
        ) : (
          <input id={id} ref={field} readOnly value={value} spellCheck={false} onFocus={(e) => e.target.select()} />
        )}
        <button type="button" onClick={() => void copy()} aria-label={`Copy ${label}`}>
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </button>
      </div>
      <span className="visually-hidden" aria-live="polite">
        {copied === 'yes' ? `${label} copied` : copied === 'no' ? `${label} selected: press Ctrl+C to copy` : ''}
      </span>
    </div>
  );
}

/** The current time, once a second. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export function Countdown({ until, now }: { until: string; now: number }) {
  const left = Date.parse(until) - now;
  if (left <= 0) return <span className="badge badge-muted">expired</span>;
  return (
    <time dateTime={until} className={left < 5 * 60_000 ? 'countdown soon' : 'countdown'} title={new Date(until).toLocaleString()}>
      {remaining(left)}
    </time>
  );
}

export function Badge({ kind, children }: { kind: 'ok' | 'bad' | 'warn' | 'muted' | 'info'; children: ReactNode }) {
  return <span className={`badge badge-${kind}`}>{children}</span>;
}

/** A page's heading: focused when the page opens, so that keyboard and screen-reader users start there. */
export function PageTitle({ children }: { children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus({ preventScroll: true }), []);
  return (
    <h1 ref={heading} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** A form that sends one request: its busy state and its refusal; what `send` resolves to goes to `onDone`. */
export function useSubmit<T>(send: () => Promise<T>, onDone: (value: T) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onDone(await send());
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return { busy, error, submit };
}
