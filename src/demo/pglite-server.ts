/**
 * Serves one PGlite instance to several PostgreSQL wire-protocol clients on a TCP port.
 *
 * Why not @electric-sql/pglite-socket's PGLiteSocketServer as is (0.2.17, read from its
 * source): it passes every message straight to PGlite, so `COPY … FROM STDIN` makes the
 * single backend hit EOF, go FATAL, and every later connection fails until restart; it
 * interleaves clients' extended-protocol messages (only an explicit BEGIN holds others
 * off); beyond its connection limit it writes plain text instead of an ErrorResponse.
 *
 * What this server guarantees:
 * - One client at a time owns the backend from its first message until it is idle again:
 *   no open transaction and no extended-protocol batch waiting for Sync. Others queue.
 *   So Parse/Bind/Execute/Sync batches and transactions never interleave.
 * - A client that disconnects while owning the backend has its batch synced and its
 *   transaction rolled back before anyone else runs.
 * - When the last client leaves, `DISCARD ALL` resets session state, so sequential
 *   clients each start clean.
 * - `COPY … FROM STDIN` is refused with SQLSTATE 0A000 (raised inside PGlite, so the
 *   transaction state is what PostgreSQL would have); COPY TO STDOUT works.
 * - Over the connection limit, a client gets FATAL 53300 like real PostgreSQL.
 *
 * Known limits (PGlite is one PostgreSQL backend):
 * - Concurrent clients share session state: SET, named prepared statements (two clients
 *   using the same name collide), temp tables, LISTEN. A NOTIFY reaches whichever client
 *   is running when it fires, so LISTEN/NOTIFY only works within one client.
 * - A client idle inside a transaction blocks all others until it ends or disconnects.
 * - Startup: any user, database and no password are accepted (trust); the session is
 *   always user `postgres`, database `postgres`.
 * - SSLRequest and GSSENCRequest are answered 'N' (plaintext only). CancelRequest is
 *   accepted and ignored: queries cannot be cancelled.
 */
import type { PGlite } from '@electric-sql/pglite';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
const MAX_STARTUP_LENGTH = 10_000;
const MAX_MESSAGE_LENGTH = 64 * 1024 * 1024;
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
const COPY_FROM_STDIN = /\bcopy\b[\s\S]*\bfrom\s+stdin\b/i;
// A statement that makes PGlite itself raise the error, with the right transaction state.
const REFUSE_COPY_FROM_STDIN =
  "DO $drawbridge$ BEGIN RAISE EXCEPTION 'COPY FROM STDIN is not supported by the demo target (PGlite)' USING ERRCODE = 'feature_not_supported'; END $drawbridge$";

export interface PGliteServerOptions {
  host?: string;
  port?: number;
  maxConnections?: number;
}

export interface PGliteServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

interface Session {
  socket: Socket;
  buffer: Buffer;
  /** The startup packet has been read (what follows is typed messages). */
  startupRead: boolean;
  /** The startup packet has been run (messages from now on have a type byte). */
  started: boolean;
  queue: Buffer[];
  pumping: boolean;
  closed: boolean;
  /** Extended-protocol messages sent since the last Sync. */
  pendingSync: boolean;
}

function errorResponse(severity: 'ERROR' | 'FATAL', code: string, message: string): Buffer {
  const fields = Buffer.concat([Buffer.from(`S${severity}\0V${severity}\0C${code}\0M${message}\0`, 'utf8'), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

/** Replaces the SQL text of a Query or Parse message that would start COPY FROM STDIN. */
function refuseCopyFromStdin(message: Buffer): Buffer {
  const type = String.fromCharCode(message[0] ?? 0);
  if (type === 'Q') {
    const sql = message.toString('utf8', 5, message.length - 1);
    if (!COPY_FROM_STDIN.test(sql)) return message;
    const body = Buffer.from(`${REFUSE_COPY_FROM_STDIN}\0`, 'utf8');
    const header = Buffer.alloc(5);
    header.write('Q', 0, 'latin1');
    header.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  }
  if (type === 'P') {
    const nameEnd = message.indexOf(0, 5);
    const sqlEnd = nameEnd < 0 ? -1 : message.indexOf(0, nameEnd + 1);
    if (sqlEnd < 0) return message;
    if (!COPY_FROM_STDIN.test(message.toString('utf8', nameEnd + 1, sqlEnd))) return message;
    const body = Buffer.concat([
      message.subarray(5, nameEnd + 1),
      Buffer.from(`${REFUSE_COPY_FROM_STDIN}\0`, 'utf8'),
      message.subarray(sqlEnd + 1),
    ]);
    const header = Buffer.alloc(5);
    header.write('P', 0, 'latin1');
    header.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  }
  return message;
}

export async function servePGlite(db: PGlite, options: PGliteServerOptions = {}): Promise<PGliteServer> {
  const host = options.host ?? '127.0.0.1';
  const maxConnections = options.maxConnections ?? 16;
  const sessions = new Set<Session>();
  // Every open socket, including refused ones, so that close() need not wait for clients.
  const sockets = new Set<Socket>();
  const cleanups = new Set<Promise<void>>();

  // The backend's owner, and sessions waiting for it in arrival order.
  let owner: Session | null = null;
  const waiters: Array<{ session: Session; resolve: () => void }> = [];
  const acquire = (session: Session): Promise<void> => {
    if (owner === null || owner === session) {
      owner = session;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiters.push({ session, resolve }));
  };
  const release = (session: Session): void => {
    if (owner !== session) return;
    const next = waiters.shift();
    owner = next?.session ?? null;
    next?.resolve();
  };

  const execute = (message: Uint8Array, onData: (data: Uint8Array) => void): Promise<void> =>
    db.runExclusive(() => db.execProtocolRawStream(message, { onRawData: onData }));

  const reset = async (session: Session): Promise<void> => {
    const discard = (): void => {};
    if (session.pendingSync) await execute(SYNC, discard);
    if (db.isInTransaction()) await execute(query('ROLLBACK'), discard);
    if (sessions.size === 0) await execute(query('DISCARD ALL'), discard);
  };

  const pump = async (session: Session): Promise<void> => {
    if (session.pumping) return;
    session.pumping = true;
    try {
      while (!session.closed && session.queue.length > 0) {
        await acquire(session);
        if (session.closed) break;
        const message = session.queue.shift() as Buffer;
        const type = session.started ? String.fromCharCode(message[0] ?? 0) : '';
        if (type === 'P' || type === 'B' || type === 'E' || type === 'D' || type === 'C' || type === 'H') {
          session.pendingSync = true;
        } else if (type === 'S') {
          session.pendingSync = false;
        }
        session.started = true;
        await execute(refuseCopyFromStdin(message), (data) => {
          // PGlite may reuse the memory behind `data`: copy before the write is queued.
          if (!session.closed) session.socket.write(Buffer.from(data));
        });
        if (!session.pendingSync && !db.isInTransaction()) release(session);
      }
    } catch (error) {
      session.socket.destroy(error as Error);
    } finally {
      session.pumping = false;
    }
  };

  const onClose = async (session: Session): Promise<void> => {
    if (session.closed) return;
    session.closed = true;
    session.queue = [];
    sessions.delete(session);
    const waiting = waiters.findIndex((w) => w.session === session);
    if (waiting >= 0) waiters.splice(waiting, 1)[0]?.resolve();
    // Clean up only once the session's in-flight message (if any) has finished.
    while (session.pumping) await new Promise((resolve) => setImmediate(resolve));
    if (owner === session || (owner === null && sessions.size === 0)) {
      await acquire(session);
      try {
        await reset(session);
      } catch {
        // The backend is shared: a failed reset leaves it as is; nothing to tell a closed client.
      } finally {
        release(session);
      }
    }
  };

  const onData = (session: Session, chunk: Buffer): void => {
    session.buffer = session.buffer.length === 0 ? chunk : Buffer.concat([session.buffer, chunk]);
    for (;;) {
      const buffer = session.buffer;
      if (!session.startupRead) {
        // Startup phase: untyped messages.
        if (buffer.length < 8) return;
        const length = buffer.readInt32BE(0);
        const code = buffer.readInt32BE(4);
        if (length < 8 || length > MAX_STARTUP_LENGTH) return fail(session, '08P01', 'invalid startup packet length');
        if (buffer.length < length) return;
        session.buffer = buffer.subarray(length);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          session.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          session.socket.end();
          return;
        }
        if (code !== PROTOCOL_3) return fail(session, '0A000', 'unsupported frontend protocol');
        session.startupRead = true;
        session.queue.push(Buffer.from(buffer.subarray(0, length)));
        void pump(session);
        continue;
      }
      if (buffer.length < 5) return;
      const length = buffer.readInt32BE(1);
      if (length < 4 || length > MAX_MESSAGE_LENGTH) return fail(session, '08P01', 'invalid message length');
      if (buffer.length < length + 1) return;
      const message = Buffer.from(buffer.subarray(0, length + 1));
      session.buffer = buffer.subarray(length + 1);
      const type = String.fromCharCode(message[0] ?? 0);
      if (type === 'X') {
        session.socket.end();
        return;
      }
      // Copy sub-protocol messages can only be stray here (COPY FROM STDIN is refused).
      if (type === 'd' || type === 'c' || type === 'f') continue;
      session.queue.push(message);
      void pump(session);
    }
  };

  const fail = (session: Session, code: string, message: string): void => {
    session.socket.end(errorResponse('FATAL', code, message));
    session.buffer = Buffer.alloc(0);
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const session: Session = {
      socket,
      buffer: Buffer.alloc(0),
      startupRead: false,
      started: false,
      queue: [],
      pumping: false,
      closed: false,
      pendingSync: false,
    };
    if (sessions.size >= maxConnections) {
      socket.on('error', () => {});
      socket.end(errorResponse('FATAL', '53300', 'sorry, too many clients already'));
      return;
    }
    sessions.add(session);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => onData(session, chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      const cleanup = onClose(session);
      cleanups.add(cleanup);
      void cleanup.finally(() => cleanups.delete(cleanup));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    host,
    port,
    async close() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closing;
      // Let the sessions' cleanup finish before the caller closes the database.
      await Promise.all([...cleanups]);
    },
  };
}

function query(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('Q', 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
