/**
 * A minimal PostgreSQL v3 wire client for tests that need to control the exact bytes sent
 * (one Sync for a whole batch, several messages in one write, a message split into single
 * bytes, binary result formats) and see every message that comes back, in order.
 *
 * Written independently of src/wire/pg so that a codec bug is not mirrored on both sides.
 * Supports trust and cleartext-password logins only (use a gateway with `auth: 'password'`).
 */

import { connect, type Socket } from 'node:net';

export interface WireMessage {
  /** One-letter message type, e.g. 'D', 'C', 'E', 'Z'. */
  readonly type: string;
  readonly body: Buffer;
}

function frame(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (text: string) => Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

export const msg = {
  startup(params: Record<string, string>): Buffer {
    const body = Buffer.concat([int32(196608), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0])]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  password: (password: string) => frame('p', cstr(password)),
  query: (sql: string) => frame('Q', cstr(sql)),
  parse: (name: string, sql: string, paramTypes: number[] = []) =>
    frame('P', Buffer.concat([cstr(name), cstr(sql), int16(paramTypes.length), ...paramTypes.map(int32)])),
  bind(
    portal: string,
    statement: string,
    params: (Buffer | null)[] = [],
    resultFormats: number[] = [],
    paramFormats: number[] = [],
  ): Buffer {
    return frame(
      'B',
      Buffer.concat([
        cstr(portal),
        cstr(statement),
        int16(paramFormats.length),
        ...paramFormats.map(int16),
        int16(params.length),
        ...params.flatMap((p) => (p === null ? [int32(-1)] : [int32(p.length), p])),
        int16(resultFormats.length),
        ...resultFormats.map(int16),
      ]),
    );
  },
  describe: (kind: 'S' | 'P', name: string) => frame('D', Buffer.concat([Buffer.from(kind), cstr(name)])),
  execute: (portal: string, maxRows = 0) => frame('E', Buffer.concat([cstr(portal), int32(maxRows)])),
  sync: () => frame('S', Buffer.alloc(0)),
  flush: () => frame('H', Buffer.alloc(0)),
  terminate: () => frame('X', Buffer.alloc(0)),
  raw: frame,
};

/** Fields of an ErrorResponse or NoticeResponse, keyed by field letter (C = SQLSTATE, M = message, S = severity). */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    out[code] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return out;
}

/** The columns of a DataRow, null for SQL NULL. */
export function dataRow(body: Buffer): (Buffer | null)[] {
  const n = body.readInt16BE(0);
  const values: (Buffer | null)[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const length = body.readInt32BE(at);
    at += 4;
    if (length < 0) values.push(null);
    else {
      values.push(body.subarray(at, at + length));
      at += length;
    }
  }
  return values;
}

/** The command tag of a CommandComplete. */
export const commandTag = (body: Buffer) => body.toString('utf8', 0, body.length - 1);

export class WireClient {
  readonly socket: Socket;
  readonly #messages: WireMessage[] = [];
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 5) {
        const length = this.#buffer.readInt32BE(1);
        if (this.#buffer.length < length + 1) break;
        this.#messages.push({ type: String.fromCharCode(this.#buffer[0]!), body: Buffer.from(this.#buffer.subarray(5, length + 1)) });
        this.#buffer = this.#buffer.subarray(length + 1);
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Connects and logs in (trust or cleartext password), returning after the first ReadyForQuery. */
  static async login(options: { host: string; port: number; user: string; database: string; password?: string }): Promise<WireClient> {
    const socket = connect({ host: options.host, port: options.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new WireClient(socket);
    socket.write(msg.startup({ user: options.user, database: options.database }));
    for (;;) {
      const m = await client.next();
      if (m.type === 'R') {
        const kind = m.body.readInt32BE(0);
        if (kind === 3) socket.write(msg.password(options.password ?? ''));
        else if (kind !== 0) throw new Error(`unsupported authentication request ${kind}`);
      } else if (m.type === 'E') {
        throw new Error(`login failed: ${JSON.stringify(errorFields(m.body))}`);
      } else if (m.type === 'Z') {
        return client;
      }
    }
  }

  /** The next message, waiting up to `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<WireMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#messages.shift();
      if (m) return m;
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  /** Messages up to and including the `count`-th ReadyForQuery. Asynchronous messages (A, N, S) are kept too. */
  async untilReady(count = 1, timeoutMs = 10_000): Promise<WireMessage[]> {
    const out: WireMessage[] = [];
    while (count > 0) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (m.type === 'Z') count--;
    }
    return out;
  }

  /** Every message until the server closes the connection. */
  async untilClosed(timeoutMs = 10_000): Promise<WireMessage[]> {
    const out: WireMessage[] = [];
    for (;;) {
      try {
        out.push(await this.next(timeoutMs));
      } catch (error) {
        if (this.closed) return out;
        throw error;
      }
    }
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes `bytes` one byte per write, letting the event loop turn between them. */
  async writeByteByByte(bytes: Buffer): Promise<void> {
    for (let i = 0; i < bytes.length; i++) {
      this.socket.write(bytes.subarray(i, i + 1));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.end(msg.terminate());
    await new Promise<void>((resolve) => {
      if (this.closed) resolve();
      else this.socket.once('close', () => resolve());
    });
  }
}

/** A readable summary of a message sequence, for comparing what the gateway and the server sent. */
export function summarize(messages: readonly WireMessage[]): string[] {
  return messages.map((m) => {
    switch (m.type) {
      case 'D':
        return `D ${JSON.stringify(dataRow(m.body).map((v) => (v === null ? null : v.toString('hex'))))}`;
      case 'C':
        return `C ${commandTag(m.body)}`;
      case 'E':
      case 'N': {
        const f = errorFields(m.body);
        return `${m.type} ${f.S} ${f.C} ${f.M}`;
      }
      case 'Z':
        return `Z ${m.body.toString('latin1')}`;
      default:
        return `${m.type} ${m.body.toString('hex')}`;
    }
  });
}
