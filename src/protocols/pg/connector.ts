/**
 * Target side: logs the gateway in to a PostgreSQL target with the credentials from config
 * (trust, cleartext, md5, SCRAM-SHA-256 with channel binding when TLS is on), over TLS as the
 * connection's `tls` mode says. The client never sees those credentials, nor the target's
 * authentication exchange: it sees only what the target says after login.
 */

import { createHash } from 'node:crypto';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { GatewayError, type PostgresConnection } from '../../core/index.ts';
import { ScramClientExchange, ScramError, tlsServerEndPoint } from '../../identity/scram.ts';
import {
  decodeBackend,
  encodePassword,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeStartup,
  errorFieldsToObject,
  Framer,
} from '../../wire/pg/index.ts';
import { connectPooled, type Address, type BufferPool, type PooledReadHandler } from '../../net/pooled-reads.ts';
import { FrameReader, PeerClosed, readSingleByte } from './frame-reader.ts';

const SSL_ACCEPTED = 0x53; // 'S'
const SSL_REFUSED = 0x4e; // 'N'

export interface TargetLogin {
  readonly socket: Socket;
  /** For plain TCP: hands the socket's reads, in pooled buffers, to the relay. */
  readonly takeOver: ((handler: PooledReadHandler) => void) | undefined;
  /** ParameterStatus messages the target sent at login, as on the wire. */
  readonly parameterStatus: readonly Buffer[];
  readonly backendKey: { readonly processId: number; readonly secretKey: Buffer } | undefined;
  /** Whole messages that arrived after ReadyForQuery (none from a well-behaved server). */
  readonly pending: Buffer;
}

export interface ConnectOptions {
  readonly maxMessageLength: number;
  readonly timeoutMs: number;
  /** Session parameters of the client to pass on (application_name, DateStyle, ...). */
  readonly parameters: Readonly<Record<string, string>>;
  /** Where reads of plain TCP connections land. */
  readonly readBuffers?: BufferPool;
}

export async function connectTarget(target: PostgresConnection, options: ConnectOptions): Promise<TargetLogin> {
  const { socket, takeOver } = await openSocket(target, options.timeoutMs, options.readBuffers);
  try {
    return { ...(await login(socket, target, options)), takeOver };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** Opens a socket to the target, TLS-negotiated as configured. */
export async function openSocket(
  target: PostgresConnection,
  timeoutMs: number,
  readBuffers?: BufferPool,
): Promise<{ socket: Socket; takeOver: TargetLogin['takeOver'] }> {
  const address = addressOf(target);
  const pooled = readBuffers && target.tls === 'disable' ? connectPooled(address, readBuffers) : undefined;
  const raw = await new Promise<Socket>((resolve, reject) => {
    const socket = pooled?.socket ?? netConnect({ ...address, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new GatewayError('target.unavailable', `could not connect to target "${target.name}": timed out`));
    }, timeoutMs);
    socket.once('connect', () => (clearTimeout(timer), socket.off('error', onError), resolve(socket)));
    const onError = (error: Error) => {
      clearTimeout(timer);
      reject(new GatewayError('target.unavailable', `could not connect to target "${target.name}": ${error.message}`, { cause: error }));
    };
    socket.once('error', onError);
  });
  if (target.tls === 'disable') return { socket: raw, takeOver: pooled?.takeOver };
  try {
    raw.write(encodeStartup({ type: 'SSLRequest' }));
    const answer = await readSingleByte(raw, timeoutMs).catch((error: unknown) => {
      throw error instanceof PeerClosed
        ? new GatewayError('target.unavailable', `target "${target.name}" closed the connection when asked for TLS`)
        : error;
    });
    if (answer === SSL_REFUSED)
      throw new GatewayError('target.unavailable', `target "${target.name}" does not accept TLS, and its tls mode is ${target.tls}`);
    if (answer !== SSL_ACCEPTED)
      throw new GatewayError('target.unavailable', `target "${target.name}" answered the TLS request with 0x${answer.toString(16)}`);
    return { socket: await upgrade(raw, target, timeoutMs), takeOver: undefined };
  } catch (error) {
    raw.destroy();
    throw error;
  }
}

/** A host that is an absolute path names a Unix socket directory, as in libpq. */
function addressOf(target: PostgresConnection): Address {
  return target.host.startsWith('/') ? { path: `${target.host}/.s.PGSQL.${target.port}` } : { host: target.host, port: target.port };
}

function upgrade(raw: Socket, target: PostgresConnection, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const verify = target.tls === 'verify-full';
    const socket = tlsConnect({
      socket: raw,
      // The certificate is checked against `host`; SNI (`servername`) may only carry a name.
      host: target.host,
      ...(isIP(target.host) ? {} : { servername: target.host }),
      ...(target.ca ? { ca: target.ca } : {}),
      // 'require' encrypts without checking whom it talks to, as libpq's sslmode=require does.
      rejectUnauthorized: verify,
      ...(verify ? {} : { checkServerIdentity: () => undefined }),
    });
    const timer = setTimeout(
      () => (socket.destroy(), reject(new GatewayError('target.unavailable', 'TLS handshake with the target timed out'))),
      timeoutMs,
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      // Node's messages end with advice about its own flags, which is no help to a database client.
      const reason = error.message.split('; if the root CA')[0];
      const what = verify
        ? `could not verify target "${target.name}" (its TLS certificate)`
        : `could not set up TLS with target "${target.name}"`;
      reject(new GatewayError('target.unavailable', `the gateway ${what}: ${reason}`, { cause: error }));
    };
    socket.once('error', onError);
  });
}

async function login(socket: Socket, target: PostgresConnection, options: ConnectOptions): Promise<Omit<TargetLogin, 'takeOver'>> {
  const framer = new Framer({ maxMessageLength: options.maxMessageLength });
  const reader = new FrameReader(socket, framer);
  const authFailed = (reason: string, cause?: unknown) =>
    new GatewayError('target.auth-failed', `the gateway could not log in to target "${target.name}": ${reason}`, { cause });
  try {
    socket.write(
      encodeStartup({
        type: 'StartupMessage',
        protocolVersion: 3 << 16,
        params: Object.assign(Object.create(null) as Record<string, string>, options.parameters, {
          user: target.user,
          database: target.database,
        }),
      }),
    );
    const parameterStatus: Buffer[] = [];
    let backendKey: TargetLogin['backendKey'];
    let scram: ScramClientExchange | undefined;
    for (;;) {
      const frame = await reader.next(options.timeoutMs, 'the target login');
      const message = decodeBackend(frame);
      switch (message.type) {
        case 'AuthenticationOk':
          break;
        case 'AuthenticationCleartextPassword':
          socket.write(encodePassword(passwordOf(target, authFailed)));
          break;
        case 'AuthenticationMD5Password': {
          const password = passwordOf(target, authFailed);
          const inner = createHash('md5')
            .update(password + target.user)
            .digest('hex');
          const outer = createHash('md5').update(inner).update(message.salt).digest('hex');
          socket.write(encodePassword(`md5${outer}`));
          break;
        }
        case 'AuthenticationSASL': {
          const certificate = 'getPeerCertificate' in socket ? (socket as TLSSocket).getPeerCertificate().raw : undefined;
          scram = new ScramClientExchange(
            passwordOf(target, authFailed),
            message.mechanisms,
            target.tls === 'disable' ? undefined : { channelBinding: certificate ? tlsServerEndPoint(certificate) : undefined },
          );
          socket.write(encodeSASLInitialResponse(scram.mechanism, Buffer.from(scram.clientFirst())));
          break;
        }
        case 'AuthenticationSASLContinue':
          if (!scram) throw authFailed('unexpected SASL message');
          socket.write(encodeSASLResponse(Buffer.from(scram.clientFinal(message.data.toString()))));
          break;
        case 'AuthenticationSASLFinal':
          if (!scram) throw authFailed('unexpected SASL message');
          scram.verifyServerFinal(message.data.toString());
          break;
        case 'ParameterStatus':
          parameterStatus.push(frame.raw);
          break;
        case 'BackendKeyData':
          backendKey = { processId: message.processId, secretKey: Buffer.from(message.secretKey) };
          break;
        case 'NoticeResponse':
        case 'NegotiateProtocolVersion':
          break;
        case 'ErrorResponse': {
          const fields = errorFieldsToObject(message.fields);
          const reason = `${fields.message ?? 'error'}${fields.code ? ` (SQLSTATE ${fields.code})` : ''}`;
          throw fields.code?.startsWith('28')
            ? authFailed(reason)
            : new GatewayError('target.unavailable', `target "${target.name}" refused the connection: ${reason}`);
        }
        case 'ReadyForQuery': {
          const pending = Buffer.concat(reader.detach().map((early) => early.raw));
          // Fail closed: half a message here would put the relay out of step with the target.
          if (framer.buffered > 0) throw new GatewayError('target.lost', `target "${target.name}" sent a partial message after login`);
          return { socket, parameterStatus, backendKey, pending };
        }
        default:
          // Kerberos, GSS, SSPI: the gateway holds no such credentials.
          throw authFailed(`unsupported authentication request ${message.type}`);
      }
    }
  } catch (error) {
    reader.detach();
    if (error instanceof ScramError) throw authFailed(error.message, error);
    if (error instanceof PeerClosed)
      throw new GatewayError('target.unavailable', `target "${target.name}" closed the connection during login`);
    throw error;
  }
}

function passwordOf(target: PostgresConnection, authFailed: (reason: string) => GatewayError): string {
  if (target.password === undefined) throw authFailed('the target asks for a password and none is configured');
  return target.password;
}

/** Forwards a cancel request to the target with the target's own key. */
export async function cancelOnTarget(
  target: PostgresConnection,
  key: { processId: number; secretKey: Buffer },
  timeoutMs: number,
): Promise<void> {
  const { socket } = await openSocket(target, timeoutMs);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
    socket.end(encodeStartup({ type: 'CancelRequest', processId: key.processId, secretKey: key.secretKey }));
    setTimeout(() => (socket.destroy(), resolve()), timeoutMs).unref();
  });
}
