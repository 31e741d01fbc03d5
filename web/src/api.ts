/**
 * Calls to the gateway's API (docs/api.md) with the session's bearer token. A refusal comes back
 * as an ApiProblem carrying the problem+json `detail`, which pages show as it is. A 401 is tried
 * once more after a refresh; if that fails too, the session ends and the app returns to sign-in.
 */

import { currentSession, endSession, refreshSession } from './auth.ts';

export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, detail: string) {
    super(detail);
    this.name = 'ApiProblem';
    this.status = status;
    this.code = code;
  }
}

export interface CallOptions {
  readonly body?: unknown;
  /** Another bearer token than the session's (the OIDC access token traded for a session). */
  readonly token?: string;
  /** Aborts the call (a page left before its answer came). */
  readonly signal?: AbortSignal;
}

export interface Answer<T> {
  readonly status: number;
  readonly body: T;
}

export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<Answer<T>> {
  const first = await send(method, path, options);
  if (first.status !== 401 || options.token !== undefined || !currentSession()) return read<T>(first);
  // Expired while the tab slept, say: one refresh, one more try.
  if (await refreshSession()) {
    const second = await send(method, path, options);
    if (second.status !== 401) return read<T>(second);
  }
  endSession('Your session has ended. Sign in again.');
  return read<T>(first);
}

/** GET and the body of a success. */
export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await call<T>('GET', path, signal ? { signal } : {})).body;
}

async function send(method: string, path: string, options: CallOptions): Promise<Response> {
  const token = options.token ?? currentSession()?.token;
  try {
    return await fetch(path, {
      method,
      headers: {
        accept: 'application/json, application/problem+json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiProblem(0, 'unreachable', `The gateway did not answer (${(error as Error).message}).`);
  }
}

async function read<T>(response: Response): Promise<Answer<T>> {
  const text = await response.text();
  if (response.ok) return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T };
  let problem: { code?: string; detail?: string } = {};
  try {
    problem = JSON.parse(text) as typeof problem;
  } catch {
    // Not problem+json (a proxy in between, say): the status says what there is to say.
  }
  throw new ApiProblem(response.status, problem.code ?? 'http-error', problem.detail ?? `HTTP ${response.status} ${response.statusText}`);
}

/** A query string from the values that are set. */
export function query(values: Record<string, string | number | undefined | null>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values))
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}
