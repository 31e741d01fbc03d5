/**
 * How the CLI talks to a running gateway: its API, with a bearer token. The token is, in
 * order: `DRAWBRIDGE_TOKEN` (an agent's service-account key or OIDC access token), or the
 * gateway session that `drawbridge login` saved in the user's config folder (0600), refreshed
 * when it has expired.
 */

import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface SavedSession {
  readonly gateway: string;
  readonly principal: string;
  readonly token: string;
  readonly refreshToken: string;
  readonly expiresAt: string;
  readonly refreshExpiresAt: string;
}

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

export const DEFAULT_GATEWAY = 'http://127.0.0.1:7070';

export function sessionFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'drawbridge', 'session.json');
}

export async function loadSession(env: NodeJS.ProcessEnv = process.env): Promise<SavedSession | undefined> {
  try {
    return JSON.parse(await readFile(sessionFile(env), 'utf8')) as SavedSession;
  } catch {
    return undefined;
  }
}

export async function saveSession(session: SavedSession, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = sessionFile(env);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  // writeFile keeps the mode of a file that already exists: make sure.
  await chmod(file, 0o600);
  return file;
}

export async function forgetSession(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await rm(sessionFile(env), { force: true });
}

export class ApiClient {
  readonly gateway: string;
  #token: string | undefined;
  readonly #session: SavedSession | undefined;
  readonly #env: NodeJS.ProcessEnv;

  private constructor(gateway: string, token: string | undefined, session: SavedSession | undefined, env: NodeJS.ProcessEnv) {
    this.gateway = gateway.replace(/\/+$/, '');
    this.#token = token;
    this.#session = session;
    this.#env = env;
  }

  /** The gateway from --gateway, DRAWBRIDGE_GATEWAY, the saved session, or the default. */
  static async open(gateway: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ApiClient> {
    const session = await loadSession(env);
    const url = gateway ?? env.DRAWBRIDGE_GATEWAY ?? session?.gateway ?? DEFAULT_GATEWAY;
    if (env.DRAWBRIDGE_TOKEN) return new ApiClient(url, env.DRAWBRIDGE_TOKEN, undefined, env);
    const usable = session && session.gateway.replace(/\/+$/, '') === url.replace(/\/+$/, '') ? session : undefined;
    return new ApiClient(url, usable?.token, usable, env);
  }

  static anonymous(gateway: string): ApiClient {
    return new ApiClient(gateway, undefined, undefined, process.env);
  }

  get loggedIn(): boolean {
    return this.#token !== undefined;
  }

  /** The token to send now (a saved session is refreshed first when it has expired); undefined when not logged in. */
  async token(): Promise<string | undefined> {
    await this.#refreshIfExpired();
    return this.#token;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    await this.#refreshIfExpired();
    const response = await this.#send(method, path, body);
    const text = await response.text();
    const parsed = text === '' ? undefined : (JSON.parse(text) as unknown);
    if (!response.ok) {
      const problem = (parsed ?? {}) as { code?: string; detail?: string };
      throw new ApiProblem(response.status, problem.code ?? 'error', problem.detail ?? `${response.status} ${response.statusText}`);
    }
    return { status: response.status, body: parsed as T };
  }

  /**
   * Follows a Server-Sent Events route: yields each event (its type and data) until the gateway
   * ends the stream or `signal` aborts; comments (heartbeats) are skipped. Refusals throw
   * ApiProblem, as `call` does.
   */
  async *events(path: string, signal?: AbortSignal): AsyncGenerator<{ event: string; data: string }> {
    await this.#refreshIfExpired();
    let response: Response;
    try {
      response = await fetch(`${this.gateway}${path}`, {
        headers: { accept: 'text/event-stream', ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) },
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) return;
      throw new ApiProblem(0, 'unreachable', `cannot reach the gateway at ${this.gateway}: ${(error as Error).message}`);
    }
    if (!response.ok || !response.body) {
      const problem = ((await response.json().catch(() => undefined)) ?? {}) as { code?: string; detail?: string };
      throw new ApiProblem(response.status, problem.code ?? 'error', problem.detail ?? `${response.status} ${response.statusText}`);
    }
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of response.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length > 0) yield { event, data: data.join('\n') };
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      throw new ApiProblem(0, 'unreachable', `the stream from ${this.gateway} broke: ${(error as Error).message}`);
    }
  }

  async #send(method: string, path: string, body: unknown): Promise<Response> {
    try {
      return await fetch(`${this.gateway}${path}`, {
        method,
        headers: {
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new ApiProblem(0, 'unreachable', `cannot reach the gateway at ${this.gateway}: ${(error as Error).message}`);
    }
  }

  async #refreshIfExpired(): Promise<void> {
    const session = this.#session;
    if (!session || Date.parse(session.expiresAt) - 30_000 > Date.now()) return;
    if (Date.parse(session.refreshExpiresAt) <= Date.now()) return;
    const response = await fetch(`${this.gateway}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: session.refreshToken }),
      signal: AbortSignal.timeout(30_000),
    }).catch(() => undefined);
    if (!response?.ok) return;
    const fresh = (await response.json()) as Omit<SavedSession, 'gateway'>;
    this.#token = fresh.token;
    await saveSession({ ...fresh, gateway: session.gateway }, this.#env);
  }
}
