/** Calls a test gateway's API as a client would: JSON in, JSON (or problem+json) out. */
export async function callApi(
  api: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** A local account with `roles` on a test gateway, logged in through the API: its bearer token. */
export async function accountToken(
  gw: {
    readonly apiPort: number;
    readonly gateway: {
      readonly accounts: {
        createUser(
          a: { name: string; password: string; roles?: ('admin' | 'approver' | 'auditor' | 'user')[] },
          by: string,
        ): Promise<unknown>;
      };
    };
  },
  name: string,
  roles: ('admin' | 'approver' | 'auditor' | 'user')[] = [],
): Promise<string> {
  const password = 'a long enough password';
  await gw.gateway.accounts.createUser({ name, password, roles }, 'test');
  return (await callApi(`http://127.0.0.1:${gw.apiPort}`, 'POST', '/api/auth/login', undefined, { username: name, password })).body
    .token as string;
}
