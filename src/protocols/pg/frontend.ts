/**
 * Client side of PostgreSQL: answers TLS and GSS encryption requests, reads the startup
 * message, authenticates the client's gateway credential (SCRAM-SHA-256, with channel binding
 * over TLS, or cleartext where allowed), logs in to the target, and hands both sides to the
 * proxy. Fails closed: any message out of place ends the connection with a FATAL error.
 *
 * The login mirrors the server's: AuthenticationOk, the target's ParameterStatus messages, the
 * gateway's own BackendKeyData (see cancel-keys.ts), ReadyForQuery.
 */

import { isIPv4, isIPv6, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { GatewayError, type AccessGrant, type PostgresConnection } from '../../core/index.ts';
import type { CredentialCheck } from '../../identity/credentials.ts';
import { ScramError, ScramServerExchange, tlsServerEndPoint } from '../../identity/scram.ts';
import type { BufferPool } from '../../net/pooled-reads.ts';
import type { Pipeline } from '../../session/pipeline.ts';
import {
  decodePassword,
  decodeSASLInitialResponse,
  decodeSASLResponse,
  decodeStartup,
  encodeBackend,
  Framer,
  ProtocolError,
  readyForQuery,
  type StartupRequest,
} from '../../wire/pg/index.ts';
import { CancelKeys } from './cancel-keys.ts';
import { cancelOnTarget, connectTarget } from './connector.ts';
import { FrameReader, PeerClosed } from './frame-reader.ts';
import { PgMasker } from './mask.ts';
import { PgProxy } from './proxy.ts';
import { renderFatal } from './render.ts';

type StartupMessage = Extract<StartupRequest, { type: 'StartupMessage' }>;

export interface PgFrontendOptions {
  readonly tls: { readonly context: SecureContext; readonly certificateDer: Buffer } | undefined;
  readonly auth: 'scram-sha-256' | 'password';
  readonly maxMessageLength: number;
  readonly loginTimeoutMs: number;
  readonly targetTimeoutMs: number;
}

export interface PgFrontendDeps {
  readonly options: PgFrontendOptions;
  readonly credentials: CredentialCheck;
  readonly connection: (name: string) => PostgresConnection | undefined;
  readonly pipeline: Pipeline;
  readonly cancelKeys: CancelKeys;
  readonly readBuffers: BufferPool;
  readonly log: Logger;
}

/** Session parameters a client may pass on to the target; anything else (notably `options`) is dropped. */
const FORWARDED_PARAMETERS = new Set([
  'application_name',
  'client_encoding',
  'DateStyle',
  'TimeZone',
  'IntervalStyle',
  'extra_float_digits',
  'search_path',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'bytea_output',
]);

const SSL_ACCEPTED = Buffer.from('S');
const ENCRYPTION_REFUSED = Buffer.from('N');

/** Serves one client connection; never throws: every failure ends in a FATAL for this client only. */
export function servePgClient(socket: Socket, deps: PgFrontendDeps): void {
  socket.setNoDelay(true);
  const clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  const log = deps.log.child({ client: clientAddress });
  new PgLogin(socket, deps, log, clientAddress).run().catch((error: unknown) => {
    log.error({ err: error }, 'unexpected failure in PostgreSQL login');
    socket.destroy();
  });
}

class PgLogin {
  readonly #deps: PgFrontendDeps;
  readonly #log: Logger;
  readonly #clientAddress: string;
  #socket: Socket;
  #tls = false;
  #framer: Framer;
  #reader: FrameReader;

  constructor(socket: Socket, deps: PgFrontendDeps, log: Logger, clientAddress: string) {
    this.#socket = socket;
    this.#deps = deps;
    this.#log = log;
    this.#clientAddress = clientAddress;
    this.#framer = new Framer({ maxMessageLength: deps.options.maxMessageLength, startup: true });
    this.#reader = new FrameReader(socket, this.#framer);
  }

  async run(): Promise<void> {
    let startup: StartupMessage | undefined;
    try {
      startup = await this.#startup();
      if (!startup) return;
      const grant = await this.#authenticate(startup);
      await this.#connect(startup, grant);
    } catch (error) {
      this.#fail(error, startup);
    }
  }

  /** Reads startup-phase requests until a StartupMessage; undefined when the client only wanted to cancel. */
  async #startup(): Promise<StartupMessage | undefined> {
    for (;;) {
      const request = decodeStartupOrFail(await this.#reader.next(this.#deps.options.loginTimeoutMs, 'the startup message'));
      switch (request.type) {
        case 'SSLRequest':
        case 'GSSENCRequest':
          // Anything the client sent after the request would be read as if encrypted (CVE-2021-23214).
          if (this.#reader.queued > 0 || this.#framer.buffered > 0)
            throw new GatewayError('protocol.malformed', 'received unencrypted data after a TLS request');
          if (request.type === 'SSLRequest' && this.#deps.options.tls && !this.#tls) await this.#startTls();
          else this.#socket.write(ENCRYPTION_REFUSED);
          break;
        case 'CancelRequest':
          await this.#cancel(request.processId, request.secretKey);
          return undefined;
        case 'StartupMessage':
          return this.#checkStartup(request);
      }
    }
  }

  async #startTls(): Promise<void> {
    const tls = this.#deps.options.tls!;
    this.#reader.detach();
    this.#socket.write(SSL_ACCEPTED);
    const secure = new TLSSocket(this.#socket, { isServer: true, secureContext: tls.context });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out')), this.#deps.options.loginTimeoutMs);
        secure.once('secure', () => (clearTimeout(timer), resolve()));
        secure.once('error', (error) => (clearTimeout(timer), reject(error)));
        secure.once('close', () => (clearTimeout(timer), reject(new Error('the client closed the connection'))));
      });
    } catch (error) {
      // Nothing can be said to a client whose TLS handshake failed: a plaintext error would be noise to it.
      this.#log.info({ reason: (error as Error).message }, 'TLS handshake with a client failed');
      secure.destroy();
      throw new PeerClosed();
    }
    this.#socket = secure;
    this.#tls = true;
    this.#framer = new Framer({ maxMessageLength: this.#deps.options.maxMessageLength, startup: true });
    this.#reader = new FrameReader(secure, this.#framer);
  }

  async #cancel(processId: number, secretKey: Buffer): Promise<void> {
    const target = this.#deps.cancelKeys.find(processId, secretKey);
    this.#socket.end();
    if (!target) {
      this.#log.warn({ processId }, 'cancel request with an unknown key ignored');
      return;
    }
    await this.#cancelOnTarget(target.connection, target.key);
  }

  #cancelOnTarget(connection: PostgresConnection, key: { processId: number; secretKey: Buffer }): Promise<void> {
    return cancelOnTarget(connection, key, this.#deps.options.targetTimeoutMs).catch((error: unknown) => {
      this.#log.warn({ err: error }, 'could not send a cancel request to the target');
    });
  }

  #checkStartup(startup: StartupMessage): StartupMessage {
    const major = startup.protocolVersion >>> 16;
    const minor = startup.protocolVersion & 0xffff;
    if (major !== 3) {
      throw new GatewayError('protocol.unsupported', `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
    }
    const replication = startup.params.replication;
    if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      throw new GatewayError('protocol.unsupported', 'replication connections are not supported through Drawbridge');
    }
    if (!startup.params.user) throw new GatewayError('auth.failed', 'no PostgreSQL user name specified in startup packet');
    const unrecognized = Object.keys(startup.params).filter((name) => name.startsWith('_pq_.'));
    if (minor > 0 || unrecognized.length > 0) {
      this.#socket.write(encodeBackend({ type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized }));
    }
    return startup;
  }

  async #authenticate(startup: StartupMessage): Promise<AccessGrant> {
    const user = startup.params.user!;
    const connection = startup.params.database || user;
    const failed = () =>
      new GatewayError('auth.failed', `password authentication failed for user "${user}"`, {
        hint: 'Drawbridge credentials are short-lived: mint a new one and use it as the password.',
      });
    if (this.#deps.options.auth === 'password') {
      if (!this.#tls && !isLoopback(this.#socket.remoteAddress)) {
        throw new GatewayError('auth.method-not-allowed', 'cleartext password authentication is allowed only over TLS or from loopback');
      }
      this.#socket.write(encodeBackend({ type: 'AuthenticationCleartextPassword' }));
      const password = decodePassword((await this.#passwordMessage()).body);
      const grant = await this.#deps.credentials.checkPassword(user, connection, password);
      if (!grant) throw failed();
      return grant;
    }
    const channelBinding = this.#tls ? tlsServerEndPoint(this.#deps.options.tls!.certificateDer) : undefined;
    const candidates = this.#deps.credentials.scramCandidates(user, connection);
    // Looked up while the client answers; a failure is taken up where it is awaited, if ever.
    candidates.catch(() => {});
    this.#socket.write(
      encodeBackend({
        type: 'AuthenticationSASL',
        mechanisms: channelBinding ? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] : ['SCRAM-SHA-256'],
      }),
    );
    const exchange = new ScramServerExchange(channelBinding);
    try {
      const initial = decodeSASLInitialResponse((await this.#passwordMessage()).body);
      const { salt, iterations, verifiers, grant } = await candidates;
      const serverFirst = exchange.start(initial.mechanism, initial.data?.toString() ?? '', salt, iterations);
      this.#socket.write(encodeBackend({ type: 'AuthenticationSASLContinue', data: Buffer.from(serverFirst) }));
      const final = exchange.finish(decodeSASLResponse((await this.#passwordMessage()).body).toString(), verifiers);
      if (!final) throw failed();
      this.#socket.write(encodeBackend({ type: 'AuthenticationSASLFinal', data: Buffer.from(final.serverFinal) }));
      return grant(final.index);
    } catch (error) {
      if (error instanceof ScramError) throw new GatewayError('protocol.malformed', error.message);
      throw error;
    }
  }

  async #passwordMessage() {
    const frame = await this.#reader.next(this.#deps.options.loginTimeoutMs, 'the password');
    if (frame.type !== 0x70)
      throw new GatewayError('protocol.malformed', `expected a password message, got message type 0x${frame.type.toString(16)}`);
    return frame;
  }

  async #connect(startup: StartupMessage, grant: AccessGrant): Promise<void> {
    const connection = this.#deps.connection(grant.connection);
    if (!connection)
      throw new GatewayError('access.unknown-connection', `connection "${grant.connection}" is not configured on this gateway`);
    const parameters: Record<string, string> = Object.create(null);
    for (const [name, value] of Object.entries(startup.params)) if (FORWARDED_PARAMETERS.has(name)) parameters[name] = value;
    const target = await connectTarget(connection, {
      maxMessageLength: this.#deps.options.maxMessageLength,
      timeoutMs: this.#deps.options.targetTimeoutMs,
      parameters,
      readBuffers: this.#deps.readBuffers,
    });
    let session;
    try {
      session = await this.#deps.pipeline.open({ protocol: 'postgres', grant, connection, clientAddress: this.#clientAddress });
    } catch (error) {
      target.socket.destroy();
      throw error;
    }
    const backendKey = target.backendKey;
    const key = backendKey ? this.#deps.cancelKeys.register({ connection, key: backendKey }) : undefined;
    const pendingClient = this.#reader.detach();
    this.#socket.pause();
    target.socket.pause();
    this.#socket.write(
      Buffer.concat([
        encodeBackend({ type: 'AuthenticationOk' }),
        ...target.parameterStatus,
        ...(key ? [encodeBackend({ type: 'BackendKeyData', processId: key.processId, secretKey: key.secretKey })] : []),
        readyForQuery('I'),
      ]),
    );
    const log = this.#log.child({ session: session.info.id, principal: grant.principal.name, connection: connection.name });
    log.info('session started');
    const masker = session.masking && new PgMasker(session.masking, (kind, count) => session.masked(kind, count));
    const proxy = new PgProxy(
      {
        client: this.#socket,
        clientFramer: this.#framer,
        target: target.socket,
        takeOverTarget: target.takeOver,
        cancelTarget: backendKey && (() => void this.#cancelOnTarget(connection, backendKey)),
        maxMessageLength: this.#deps.options.maxMessageLength,
        parameterStatus: target.parameterStatus,
        masker,
      },
      session,
      log,
    );
    session.onTerminate((error) => proxy.terminate(error));
    proxy.start({ client: pendingClient, target: target.pending }, (reason) => {
      if (key) this.#deps.cancelKeys.release(key.processId);
      masker?.flush(); // what was masked since the last result began, for the session's end record
      session.close(reason);
      log.info({ reason }, 'session ended');
    });
  }

  #fail(error: unknown, startup: StartupMessage | undefined): void {
    this.#reader.detach();
    if (error instanceof PeerClosed) {
      // The client went away during login (psql does so to ask the user for a password).
      this.#socket.destroy();
      return;
    }
    const gatewayError = error instanceof GatewayError ? error : undefined;
    if (gatewayError)
      this.#log.info({ code: gatewayError.code, reason: gatewayError.message, user: startup?.params.user }, 'login refused');
    else this.#log.error({ err: error }, 'login failed');
    const user = startup?.params.user;
    if (user) {
      this.#deps.pipeline.loginFailed({
        protocol: 'postgres',
        user,
        connection: startup.params.database || user,
        clientAddress: this.#clientAddress,
        code: gatewayError?.code ?? 'internal',
        reason: gatewayError?.message ?? 'internal gateway error',
      });
    }
    if (!this.#socket.destroyed) this.#socket.end(renderFatal(error));
  }
}

function decodeStartupOrFail(frame: Parameters<typeof decodeStartup>[0]): StartupRequest {
  const code = frame.body.length >= 4 ? frame.body.readUInt32BE(0) : 0;
  const major = code >>> 16;
  // 1234 is the major of the special requests (SSL, GSS encryption, cancel); anything else not 3 is another protocol.
  if (major !== 3 && major !== 1234) {
    throw new GatewayError('protocol.unsupported', `unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.0`);
  }
  try {
    return decodeStartup(frame);
  } catch (error) {
    if (error instanceof ProtocolError) throw new GatewayError('protocol.malformed', error.message);
    throw error;
  }
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (isIPv4(address)) return address.startsWith('127.');
  if (isIPv6(address)) return address === '::1' || address.startsWith('::ffff:127.');
  return false;
}
