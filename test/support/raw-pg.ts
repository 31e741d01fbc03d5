/**
 * A tiny raw-socket PostgreSQL client for tests that must send hand-made bytes: malformed or
 * oversized messages, protocol versions no library speaks, requests pipelined where they must
 * not be, forged cancel keys. Messages are built and parsed with the gateway's own codec
 * (src/wire/pg), except where a test needs bytes the codec refuses to make.
 *
 * Guarantees: every byte received (after TLS, decrypted) is kept in `received` unless
 * `keep: false`, so a test can assert what never reached the client; reads never hang past
 * their timeout. Limits: test-only, one conversation at a time, no COPY helpers.
 */

import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ScramClientExchange, tlsServerEndPoint } from '../../src/identity/scram.ts';
import {
  decodeBackend,
  encodeFrontend,
  encodePassword,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeStartup,
  errorFieldsToObject,
  type BackendMessage,
  type ErrorFields,
  type Frame,
} from '../../src/wire/pg/index.ts';

export const PROTOCOL_3_0 = 3 << 16;

export class RawPgTimeout extends Error {
  override name = 'RawPgTimeout';
}

export class RawPgClosed extends Error {
  override name = 'RawPgClosed';
}

export interface RawPgOptions {
  readonly host?: string;
  readonly port: number;
  /** Keep every received byte in `received` (default true). */
  readonly keep?: boolean;
}

export interface LoginResult {
  readonly ok: boolean;
  /** Every message up to ReadyForQuery or the error. */
  readonly messages: BackendMessage[];
  readonly error: ErrorFields | undefined;
  readonly backendKey: { processId: number; secretKey: Buffer } | undefined;
}

export interface QueryResult {
  readonly rows: (string | null)[][];
  readonly error: ErrorFields | undefined;
  readonly messages: BackendMessage[];
}

export class RawPg {
  socket: Socket;
  readonly received: Buffer[] = [];
  readonly #keep: boolean;
  #buffer: Buffer = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #closed = false;
  readonly #closedPromise: Promise<void>;
  #resolveClosed!: () => void;
  #tlsCertificate: Buffer | undefined;

  private constructor(socket: Socket, keep: boolean) {
    this.socket = socket;
    this.#keep = keep;
    this.#closedPromise = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#attach(socket);
  }

  static async connect(options: RawPgOptions): Promise<RawPg> {
    const socket = netConnect({ host: options.host ?? '127.0.0.1', port: options.port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => (socket.off('error', reject), resolve()));
      socket.once('error', reject);
    });
    return new RawPg(socket, options.keep ?? true);
  }

  readonly #onData = (chunk: Buffer) => {
    if (this.#keep) this.received.push(chunk);
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    this.#notify();
  };
  readonly #onClose = () => {
    this.#closed = true;
    this.#resolveClosed();
    this.#notify();
  };
  readonly #onError = () => {
    /* a reset shows up as close */
  };

  #attach(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
  }

  #detach(socket: Socket): void {
    socket.off('data', this.#onData);
    socket.off('close', this.#onClose);
    socket.off('error', this.#onError);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** All bytes received so far, decrypted. */
  bytes(): Buffer {
    return Buffer.concat(this.received);
  }

  /** Bytes received and not yet consumed. */
  get unread(): number {
    return this.#buffer.length;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves once the connection is closed; false when it is still open after the timeout. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.#closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      this.#closedPromise.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return result;
  }

  async #waitFor(enough: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!enough()) {
      if (this.#closed) throw new RawPgClosed(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new RawPgTimeout(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => (clearTimeout(timer), resolve());
      });
    }
  }

  /** One raw byte (the answer to SSLRequest / GSSENCRequest). */
  async byte(timeoutMs = 5000): Promise<number> {
    await this.#waitFor(() => this.#buffer.length >= 1, timeoutMs, 'one byte');
    const value = this.#buffer[0]!;
    this.#buffer = this.#buffer.subarray(1);
    return value;
  }

  /** The next whole typed frame, undecoded. */
  async frame(timeoutMs = 5000): Promise<Frame> {
    const complete = () => this.#buffer.length >= 5 && this.#buffer.length >= 1 + this.#buffer.readUInt32BE(1);
    await this.#waitFor(complete, timeoutMs, 'a message');
    const length = 1 + this.#buffer.readUInt32BE(1);
    const raw = this.#buffer.subarray(0, length);
    this.#buffer = this.#buffer.subarray(length);
    return { type: raw[0]!, body: raw.subarray(5), raw };
  }

  async message(timeoutMs = 5000): Promise<BackendMessage> {
    return decodeBackend(await this.frame(timeoutMs));
  }

  /** Messages up to and including the first of `types` (or an ErrorResponse when `stopOnError`). */
  async until(types: readonly BackendMessage['type'][], timeoutMs = 5000, stopOnError = true): Promise<BackendMessage[]> {
    const messages: BackendMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.message(Math.max(1, deadline - Date.now()));
      messages.push(message);
      if (types.includes(message.type) || (stopOnError && message.type === 'ErrorResponse')) return messages;
    }
  }

  /** The next message, which must be an ErrorResponse; returns its fields. */
  async error(timeoutMs = 5000): Promise<ErrorFields> {
    const messages = await this.until(['ErrorResponse'], timeoutMs);
    return errorOf(messages)!;
  }

  /** Sends SSLRequest, expects 'S', and switches to TLS. */
  async startTls(options: ConnectionOptions = {}): Promise<void> {
    this.send(encodeStartup({ type: 'SSLRequest' }));
    const answer = await this.byte();
    if (answer !== 0x53) throw new Error(`server refused TLS (answered 0x${answer.toString(16)})`);
    const raw = this.socket;
    this.#detach(raw);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => (secure.off('error', reject), resolve()));
      secure.once('error', reject);
    });
    this.#tlsCertificate = (secure as TLSSocket).getPeerCertificate().raw;
    this.socket = secure;
    this.#attach(secure);
  }

  startup(params: Record<string, string>, protocolVersion = PROTOCOL_3_0): void {
    this.send(encodeStartup({ type: 'StartupMessage', protocolVersion, params }));
  }

  /**
   * Logs in with SCRAM-SHA-256 (-PLUS over TLS when offered) or cleartext, whichever the server
   * asks for. `tamperProof` flips a bit of the client proof.
   */
  async login(
    user: string,
    database: string,
    password: string,
    options: { protocolVersion?: number; params?: Record<string, string>; tamperProof?: boolean; channelBinding?: boolean } = {},
  ): Promise<LoginResult> {
    this.startup({ user, database, ...options.params }, options.protocolVersion);
    return this.authenticate(password, options);
  }

  /** The authentication exchange after a StartupMessage. */
  async authenticate(password: string, options: { tamperProof?: boolean; channelBinding?: boolean } = {}): Promise<LoginResult> {
    const messages: BackendMessage[] = [];
    let scram: ScramClientExchange | undefined;
    let backendKey: LoginResult['backendKey'];
    for (;;) {
      const message = await this.message();
      messages.push(message);
      switch (message.type) {
        case 'AuthenticationCleartextPassword':
          this.send(encodePassword(password));
          break;
        case 'AuthenticationSASL': {
          const binding = this.#tlsCertificate && options.channelBinding !== false ? tlsServerEndPoint(this.#tlsCertificate) : undefined;
          scram = new ScramClientExchange(password, message.mechanisms, this.#tlsCertificate ? { channelBinding: binding } : undefined);
          this.send(encodeSASLInitialResponse(scram.mechanism, Buffer.from(scram.clientFirst())));
          break;
        }
        case 'AuthenticationSASLContinue': {
          let final = scram!.clientFinal(message.data.toString());
          if (options.tamperProof) final = tamper(final);
          this.send(encodeSASLResponse(Buffer.from(final)));
          break;
        }
        case 'AuthenticationSASLFinal':
          scram!.verifyServerFinal(message.data.toString());
          break;
        case 'BackendKeyData':
          backendKey = { processId: message.processId, secretKey: Buffer.from(message.secretKey) };
          break;
        case 'ErrorResponse':
          return { ok: false, messages, error: errorOf(messages), backendKey };
        case 'ReadyForQuery':
          return { ok: true, messages, error: undefined, backendKey };
        default:
          break;
      }
    }
  }

  /** A simple Query; collects text rows up to ReadyForQuery (or a FATAL that closes the connection). */
  async query(sql: string, timeoutMs = 10_000): Promise<QueryResult> {
    this.send(encodeFrontend({ type: 'Query', sql }));
    const messages = await this.until(['ReadyForQuery'], timeoutMs, false).catch((error: unknown) => {
      throw error;
    });
    const rows = messages.flatMap((m) => (m.type === 'DataRow' ? [m.values.map((v) => (v === null ? null : v.toString()))] : []));
    return { rows, error: errorOf(messages), messages };
  }

  terminate(): void {
    if (!this.#closed) this.socket.end(encodeFrontend({ type: 'Terminate' }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function errorOf(messages: readonly BackendMessage[]): ErrorFields | undefined {
  const error = messages.find((m) => m.type === 'ErrorResponse');
  return error?.type === 'ErrorResponse' ? errorFieldsToObject(error.fields) : undefined;
}

/** Flips one bit of the SCRAM client proof (the `p=` attribute). */
function tamper(clientFinal: string): string {
  const at = clientFinal.lastIndexOf('p=') + 2;
  const proof = Buffer.from(clientFinal.slice(at), 'base64');
  proof[0] = proof[0]! ^ 0x01;
  return clientFinal.slice(0, at) + proof.toString('base64');
}

/** Sends a CancelRequest on a fresh connection and waits until the server closes it. */
export async function sendCancel(port: number, processId: number, secretKey: Buffer, host = '127.0.0.1'): Promise<void> {
  const raw = await RawPg.connect({ host, port });
  raw.send(encodeStartup({ type: 'CancelRequest', processId, secretKey }));
  await raw.waitClosed(5000);
  raw.destroy();
}

/** A credential-shaped string that no gateway minted. */
export function forgedCredential(): string {
  return `dbr_${randomBytes(32).toString('base64url')}`;
}

/** A typed message with an arbitrary type byte, declared length and body (no checks). */
export function rawMessage(type: number, body: Buffer, declaredLength = body.length + 4): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeInt32BE(declaredLength, 1);
  return Buffer.concat([header, body]);
}

/** An untyped startup packet with an arbitrary protocol code and parameters. */
export function rawStartup(code: number, params: Record<string, string> = {}): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(code >>> 0);
  for (const [name, value] of Object.entries(params)) parts.push(Buffer.from(`${name}\0${value}\0`));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length + 4);
  return Buffer.concat([length, body]);
}

export interface PsqlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs psql with a connection string and `-c` commands; never throws on a non-zero exit.
 * The password goes through PGPASSWORD so that it is not on the command line.
 */
export async function psql(
  conninfo: string,
  password: string | undefined,
  commands: readonly string[],
  timeoutMs = 20_000,
): Promise<PsqlResult> {
  const { execFile } = await import('node:child_process');
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: '10', PGPASSFILE: '/dev/null' };
  for (const name of ['PGPASSWORD', 'PGSSLMODE', 'PGUSER', 'PGDATABASE', 'PGHOST', 'PGPORT', 'PGCHANNELBINDING', 'PGGSSENCMODE'])
    delete env[name];
  if (password !== undefined) env.PGPASSWORD = password;
  const args = ['-X', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', ...commands.flatMap((c) => ['-c', c]), conninfo];
  return new Promise((resolve) => {
    execFile('psql', args, { env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}
