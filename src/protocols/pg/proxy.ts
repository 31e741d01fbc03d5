/**
 * The data phase of one PostgreSQL session: client and target are both logged in, and every
 * client message is framed, validated and, when it carries a statement, decided on before a
 * byte of it reaches the target. Target messages stream back as they come; only the ones that
 * end a statement are decoded, to record its outcome. Memory does not grow with result size:
 * each side is paused while the other cannot take more (backpressure in both directions).
 *
 * Responses are matched to requests with a queue that mirrors the target's: a simple Query, an
 * Execute, a Sync or a FunctionCall each expect an answer, in order. A refused statement puts
 * its error into that queue, so that it reaches the client exactly where the target's answer
 * would have been, even in a pipeline.
 *
 * A refused Parse, and any refusal inside a transaction block, is raised by the target itself
 * (a DO block carrying our SQLSTATE and message, whose replies the relay cuts out or replaces),
 * so that it aborts what a failed statement would have: the transaction, the batch up to Sync.
 *
 * In a masked session every message that carries data is complete before it goes on, and goes
 * rewritten when the masker found something (mask.ts): in the read buffer itself when the masks
 * keep the values' lengths, else as a new message; only the message under way at the end of a
 * chunk is held back.
 */

import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { allow, GatewayError, type Verdict } from '../../core/index.ts';
import type { PooledReadHandler } from '../../net/pooled-reads.ts';
import type { ResultSample } from '../../recording/result-sample.ts';
import type { LiveSession, StatementTrace } from '../../session/pipeline.ts';
import {
  decodeBackend,
  decodeErrorFields,
  decodeFrontend,
  encodeFrontend,
  errorFieldsToObject,
  FrameScanner,
  NotUtf8Error,
  FramingError,
  noticeResponse,
  ProtocolError,
  readyForQuery,
  type Frame,
  type Framer,
  type FrontendMessage,
} from '../../wire/pg/index.ts';
import { columnNames, functionCallCommand, prepareCommand, queryCommand, rowsOfTag, rowValues } from './commands.ts';
import { framingError } from './frame-reader.ts';
import { framed, MASKED_IN_PLACE, MASKED_TYPES, type PgMasker } from './mask.ts';
import { renderError, renderFatal, sqlstateOf } from './render.ts';

/** The target's messages the proxy follows; the scanner hands over the bodies of those it reads. */
const BackendType = {
  DataRow: 0x44, // D
  CommandComplete: 0x43, // C
  EmptyQueryResponse: 0x49, // I
  PortalSuspended: 0x73, // s
  ErrorResponse: 0x45, // E
  ReadyForQuery: 0x5a, // Z
  ParseComplete: 0x31, // 1
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  RowDescription: 0x54, // T
  NoData: 0x6e, // n
  ParameterStatus: 0x53, // S
} as const;
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
const NOTHING = Buffer.alloc(0);
const KEPT = [BackendType.CommandComplete, BackendType.ErrorResponse, BackendType.ReadyForQuery, BackendType.ParameterStatus];

type Expected =
  | {
      readonly kind: 'query';
      readonly trace: StatementTrace;
      rows: number | undefined;
      error: { code: string; message: string } | undefined;
    }
  | { readonly kind: 'execute'; readonly trace: StatementTrace; readonly portal: string; described: boolean }
  /** Parse, Bind and Close end with their own completion message; Describe with RowDescription or NoData. */
  | { readonly kind: 'reply'; readonly endsWith: readonly number[]; readonly describes?: string }
  | { readonly kind: 'sync' }
  /** Gateway-made bytes; `acknowledges` when they end with ReadyForQuery (a refusal's answer). */
  | { readonly kind: 'inject'; readonly bytes: Buffer; readonly acknowledges: boolean }
  /** A reply to a message the gateway sent on its own: it is cut out of the stream to the client. */
  | { readonly kind: 'swallow'; readonly type: number }
  /**
   * The target raising a refusal of ours: its ErrorResponse is replaced by ours (`bytes`), so
   * that the client reads the refusal as the gateway words it, without the DO block's context.
   */
  | { readonly kind: 'refusal'; readonly bytes: Buffer };

const PARSE_REPLY: Expected = { kind: 'reply', endsWith: [BackendType.ParseComplete] };
const BIND_REPLY: Expected = { kind: 'reply', endsWith: [BackendType.BindComplete] };
const CLOSE_REPLY: Expected = { kind: 'reply', endsWith: [BackendType.CloseComplete] };
const DESCRIBE_ENDS = [BackendType.RowDescription, BackendType.NoData];
const DESCRIBE_REPLY: Expected = { kind: 'reply', endsWith: DESCRIBE_ENDS };
/** The prepared statement the gateway raises refusals of the extended protocol with. */
const REFUSAL_STATEMENT = 'drawbridge_refusal';

export interface ProxySides {
  readonly client: Socket;
  readonly clientFramer: Framer;
  readonly target: Socket;
  /** Plain TCP targets hand their reads over in pooled buffers. */
  readonly takeOverTarget: ((handler: PooledReadHandler) => void) | undefined;
  /** Cancels whatever the target is running, with the target's own key. */
  readonly cancelTarget: (() => void) | undefined;
  readonly maxMessageLength: number;
  /** The target's ParameterStatus messages of the login, as on the wire. */
  readonly parameterStatus: readonly Buffer[];
  /** Rewrites what carries data before it reaches the client; undefined: this session is not masked. */
  readonly masker: PgMasker | undefined;
}

export class PgProxy {
  readonly #client: Socket;
  readonly #target: Socket;
  readonly #clientFramer: Framer;
  readonly #targetScanner: FrameScanner;
  readonly #takeOverTarget: ProxySides['takeOverTarget'];
  readonly #cancelTarget: ProxySides['cancelTarget'];
  readonly #session: LiveSession;
  readonly #log: Logger;
  readonly #expected: Expected[] = [];
  readonly #clientQueue: Frame[] = [];
  readonly #statements = new Map<string, string>();
  readonly #portals = new Map<string, string>();
  /** The prepared statement each portal was bound from, for the masker's column types. */
  readonly #portalStatements = new Map<string, string>();
  /** Prepared statements that policy holds for approval: each Execute of them waits for its own. */
  readonly #heldStatements = new Map<string, HoldVerdict>();
  /** A held Execute waits: the target is asked to send what it owes first. */
  #flushFirst = false;
  /** Each portal's parameters as bound, for the approval of a held Execute. */
  readonly #portalParams = new Map<string, readonly (string | null)[]>();
  readonly #masker: PgMasker | undefined;
  #deciding = false;
  #skipUntilSync = false;
  #transactionStatus = 0x49; // 'I'
  /** Bytes of a target message under way that may have to be cut out (see 'swallow'). */
  #heldBack: Buffer | undefined;
  /**
   * The target reads backslashes in '…' strings as escapes (standard_conforming_strings off),
   * unlike the classifier: a text with a backslash could then mean something else to it.
   */
  #backslashEscapes = false;
  /**
   * A statement that may change standard_conforming_strings is on its way to the target: until
   * every answer is in (and with it the target's ParameterStatus), the setting is not known.
   */
  #settingUnsure = false;
  #closed = false;
  /** The client said goodbye: the target still answers what came before, for the record. */
  #terminating = false;
  /** The target sent a FATAL error of its own, which tells the client why the session ends. */
  #targetSaidFatal = false;
  #onClosed: ((reason: string) => void) | undefined;
  /** A ReadyForQuery came in the chunk being relayed: the chunk acknowledges statements. */
  #acknowledges = false;
  /** Writes to the client held until the session's audit records are committed; later ones queue behind. */
  #gate: Promise<void> | undefined;

  constructor(sides: ProxySides, session: LiveSession, log: Logger) {
    this.#client = sides.client;
    this.#target = sides.target;
    this.#clientFramer = sides.clientFramer;
    this.#masker = sides.masker;
    this.#targetScanner = new FrameScanner({
      maxMessageLength: sides.maxMessageLength,
      keep: sides.masker ? [...KEPT, ...MASKED_TYPES] : KEPT,
    });
    this.#takeOverTarget = sides.takeOverTarget;
    this.#cancelTarget = sides.cancelTarget;
    this.#session = session;
    this.#log = log;
    session.onNotice((text) => this.#notice(text));
    for (const raw of sides.parameterStatus) this.#parameterStatus(raw.subarray(5));
  }

  /** Starts relaying; `pending` is what either side sent before the relay began. */
  start(pending: { client: readonly Frame[]; target: Buffer }, onClosed: (reason: string) => void): void {
    this.#onClosed = onClosed;
    this.#client.on('data', (chunk: Buffer) => this.#fromClient(chunk));
    if (this.#takeOverTarget) this.#takeOverTarget((chunk, release) => this.#fromTarget(chunk, release));
    else this.#target.on('data', (chunk: Buffer) => this.#fromTarget(chunk, undefined));
    this.#client.on('close', () => this.#terminating || this.#end('client disconnected'));
    this.#client.on('error', (error) => this.#log.debug({ err: error }, 'client socket error'));
    this.#target.on('close', () => this.#targetGone());
    this.#target.on('error', (error) => this.#log.warn({ err: error }, 'target socket error'));
    if (pending.target.length > 0) this.#fromTarget(pending.target, undefined);
    this.#clientQueue.push(...pending.client);
    this.#pump();
    this.#client.resume();
    this.#target.resume();
  }

  /** Ends the session with a FATAL error the client can read (expiry, revocation, shutdown). */
  terminate(error: GatewayError): void {
    if (this.#closed) return;
    // A client that said goodbye (Terminate) is owed nothing more, and its target was told already.
    if (!this.#terminating) {
      this.#sayFatal(error);
      this.#target.end(TERMINATE);
    }
    this.#end(error.message);
  }

  #fromClient(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#clientFramer.push(chunk);
    } catch (error) {
      this.#clientFault(error instanceof FramingError ? framingError(error) : error);
      return;
    }
    for (const frame of frames) this.#clientQueue.push(frame);
    this.#pump();
  }

  /** Handles queued client frames in order until the queue is empty or a decision is pending. */
  #pump(): void {
    const out = new Spans();
    while (!this.#deciding && !this.#closed) {
      const frame = this.#clientQueue.shift();
      if (!frame) break;
      let message: FrontendMessage;
      try {
        message = decodeFrontend(frame);
      } catch (error) {
        if (error instanceof NotUtf8Error) {
          // Fail closed on text the gateway cannot read, but only this message: the stream is in step.
          if (!this.#skipUntilSync) this.#refuseUnreadable(frame, error.message, out);
          continue;
        }
        this.#clientFault(error instanceof ProtocolError ? new GatewayError('protocol.malformed', error.message) : error);
        return;
      }
      // After a refused message of the extended protocol, the rest up to Sync is discarded, as the server itself does after an error.
      if (this.#skipUntilSync && message.type !== 'Sync') continue;
      const decided = this.#decide(message);
      if (decided instanceof Promise) {
        this.#deciding = true;
        this.#client.pause();
        if (this.#flushFirst) {
          this.#flushFirst = false;
          out.add(FLUSH);
        }
        this.#send(out);
        decided.then(
          (verdict) => {
            this.#deciding = false;
            if (this.#closed) return;
            this.#apply(message, frame, verdict, out);
            this.#send(out);
            this.#client.resume();
            this.#pump();
          },
          (error: unknown) => this.#clientFault(error),
        );
        return;
      }
      this.#apply(message, frame, decided, out);
    }
    this.#send(out);
  }

  #decide(message: FrontendMessage): Verdict | Promise<Verdict> {
    if (message.type === 'Query' || message.type === 'Parse') {
      // Fail closed: with standard_conforming_strings off, 'a\'' hides what follows from the
      // classifier (which reads SQL as PostgreSQL does with it on) but not from the target.
      if (message.sql.includes('\\') && (this.#backslashEscapes || (this.#settingUnsure && this.#expected.length > 0))) {
        return BACKSLASH_REFUSED;
      }
      if (MAY_CHANGE_SETTING.test(message.sql)) this.#settingUnsure = true;
    }
    switch (message.type) {
      case 'Query':
        return this.#holdIfAsked(this.#session.decide(queryCommand(message.sql)), message.sql);
      case 'Parse':
        // A statement held for approval is prepared (that runs nothing); each Execute of it waits.
        return this.#session.decide(prepareCommand(message.name, message.sql));
      case 'FunctionCall': {
        const command = functionCallCommand(message.functionOid, message.args.length);
        return this.#holdIfAsked(this.#session.decide(command), command.text);
      }
      case 'Execute': {
        const statement = this.#portalStatements.get(message.portal);
        const hold = statement === undefined ? undefined : this.#heldStatements.get(statement);
        if (hold === undefined) return allow;
        // The target keeps what it owes for the messages before until a Sync or Flush: ask for
        // it now, so that the client gets those replies and the notice while the Execute waits.
        this.#flushFirst = true;
        return this.#session.hold(this.#portals.get(message.portal) ?? '', this.#portalParams.get(message.portal), hold);
      }
      default:
        return allow;
    }
  }

  /** A verdict to hold becomes the wait for the approval, then its outcome. */
  #holdIfAsked(verdict: Verdict | Promise<Verdict>, text: string): Verdict | Promise<Verdict> {
    if (verdict instanceof Promise) return verdict.then((v) => (v.outcome === 'hold' ? this.#session.hold(text, undefined, v) : v));
    return verdict.outcome === 'hold' ? this.#session.hold(text, undefined, verdict) : verdict;
  }

  /** A word to the client while its statement waits (which approval, where), after what the target still owes it. */
  #notice(text: string): void {
    if (!this.#closed) this.#inject(noticeResponse('NOTICE', '00000', text), undefined, false);
  }

  #apply(message: FrontendMessage, frame: Frame, verdict: Verdict, out: Spans): void {
    if (verdict.outcome === 'deny') {
      this.#refuse(message, verdict.reason, verdict.policy, out);
      return;
    }
    switch (message.type) {
      case 'Query':
        this.#expected.push({ kind: 'query', trace: this.#session.begin(message.sql), rows: undefined, error: undefined });
        break;
      case 'FunctionCall':
        this.#expected.push({
          kind: 'query',
          trace: this.#session.begin(functionCallCommand(message.functionOid, message.args.length).text),
          rows: undefined,
          error: undefined,
        });
        break;
      case 'Parse':
        this.#statements.set(message.name, message.sql);
        if (verdict.outcome === 'hold') this.#heldStatements.set(message.name, verdict);
        else this.#heldStatements.delete(message.name);
        this.#expected.push(PARSE_REPLY);
        break;
      case 'Bind':
        this.#portals.set(message.portal, this.#statements.get(message.statement) ?? '');
        this.#portalStatements.set(message.portal, message.statement);
        if (this.#heldStatements.has(message.statement)) this.#portalParams.set(message.portal, message.params.map(shownParam));
        this.#expected.push(BIND_REPLY);
        break;
      case 'Describe':
        this.#expected.push(
          this.#masker ? { kind: 'reply', endsWith: DESCRIBE_ENDS, describes: `${message.target}${message.name}` } : DESCRIBE_REPLY,
        );
        break;
      case 'Execute':
        this.#expected.push({
          kind: 'execute',
          trace: this.#session.begin(this.#portals.get(message.portal) ?? ''),
          portal: message.portal,
          described: false,
        });
        break;
      case 'Close':
        (message.target === 'S' ? this.#statements : this.#portals).delete(message.name);
        if (message.target === 'S') this.#heldStatements.delete(message.name);
        this.#masker?.forget(`${message.target}${message.name}`);
        this.#expected.push(CLOSE_REPLY);
        break;
      case 'Sync':
        this.#skipUntilSync = false;
        this.#expected.push({ kind: 'sync' });
        break;
      case 'Terminate':
        // The target answers everything before Terminate, then closes; the session ends then.
        out.add(frame.raw);
        this.#send(out);
        this.#terminating = true;
        this.#target.end();
        this.#client.end();
        return;
    }
    out.add(frame.raw);
  }

  #refuse(message: FrontendMessage, reason: string, policy: string | undefined, out: Spans): void {
    const text =
      message.type === 'Query' || message.type === 'Parse'
        ? message.sql
        : message.type === 'Execute'
          ? (this.#portals.get(message.portal) ?? message.type)
          : message.type;
    this.#session.refuse(text, reason, 'command.denied', policy);
    this.#answerRefusal(message.type === 'Query' || message.type === 'FunctionCall', new GatewayError('command.denied', reason), out);
  }

  #refuseUnreadable(frame: Frame, problem: string, out: Spans): void {
    const reason = `${problem}: Drawbridge reads statements as UTF-8; set client_encoding to UTF8`;
    this.#session.refuse(`(unreadable ${String.fromCharCode(frame.type)} message)`, reason, 'command.unreadable');
    this.#answerRefusal(frame.type === 0x51 || frame.type === 0x46, new GatewayError('command.unreadable', reason), out);
  }

  /**
   * A refused simple query or function call outside a transaction block is answered at once.
   * Everywhere else the target raises the refusal itself, in our words and SQLSTATE, so that it
   * fails what it would have failed had the statement failed there: inside a transaction block
   * the transaction aborts (COMMIT then rolls back); in the extended protocol the messages of
   * the batch before it roll back with their implicit transaction, and the target skips to Sync.
   */
  #answerRefusal(standalone: boolean, error: GatewayError, out: Spans): void {
    const raise = raiseOnTarget(sqlstateOf(error.code), error.message);
    if (standalone && this.#transactionStatus === TRANSACTION_OPEN) {
      out.add(encodeFrontend({ type: 'Query', sql: raise }));
      this.#expected.push({ kind: 'refusal', bytes: renderError(error) }, { kind: 'sync' });
      return;
    }
    if (standalone) {
      this.#inject(Buffer.concat([renderError(error), readyForQuery(statusName(this.#transactionStatus))]), out, true);
      return;
    }
    // A statement and portal of the gateway's own, so that the client's stay as they were; the
    // replies to Close, Parse and Bind are cut out, the ErrorResponse of Execute becomes ours.
    out.add(encodeFrontend({ type: 'Close', target: 'S', name: REFUSAL_STATEMENT }));
    out.add(encodeFrontend({ type: 'Parse', name: REFUSAL_STATEMENT, sql: raise, paramTypes: [] }));
    out.add(
      encodeFrontend({
        type: 'Bind',
        portal: REFUSAL_STATEMENT,
        statement: REFUSAL_STATEMENT,
        paramFormats: [],
        params: [],
        resultFormats: [],
      }),
    );
    out.add(encodeFrontend({ type: 'Execute', portal: REFUSAL_STATEMENT, maxRows: 0 }));
    this.#expected.push(
      { kind: 'swallow', type: BackendType.CloseComplete },
      { kind: 'swallow', type: BackendType.ParseComplete },
      { kind: 'swallow', type: BackendType.BindComplete },
      { kind: 'refusal', bytes: renderError(error) },
    );
    this.#skipUntilSync = true;
  }

  /**
   * Queues gateway-made bytes to reach the client after everything the target owes before them
   * (and after `out`, what the client sent before, goes to the target); `acknowledges` as in `Expected`.
   */
  #inject(bytes: Buffer, out: Spans | undefined, acknowledges: boolean): void {
    if (this.#expected.length === 0) {
      if (out) this.#send(out);
      this.#toClient(bytes, undefined, acknowledges);
    } else {
      this.#expected.push({ kind: 'inject', bytes, acknowledges });
    }
  }

  #send(out: Spans): void {
    const bytes = out.take();
    if (!bytes || this.#closed) return;
    if (!this.#target.write(bytes)) {
      this.#client.pause();
      this.#target.once('drain', () => this.#deciding || this.#client.resume());
    }
  }

  /** `release` gives a pooled read buffer back once the bytes it holds have gone out. */
  #fromTarget(chunk: Buffer, release: (() => void) | undefined): void {
    if (this.#closed) {
      release?.();
      return;
    }
    // The start of a message held back from the last chunk (it might be one to cut out) goes
    // first, as a part of its own (the chunk is not copied after it): out with the bytes that
    // follow it, or dropped when the message is replaced.
    let held = this.#heldBack;
    this.#heldBack = undefined;
    this.#acknowledges = false;
    const parts: Buffer[] = [];
    /** Bytes of `chunk` before this went out (or were replaced); a message that began in `held` began before 0. */
    let forwarded = 0;
    const forward = (to: number): void => {
      if (held) parts.push(held);
      held = undefined;
      if (to > forwarded) parts.push(chunk.subarray(forwarded, to));
      forwarded = Math.max(forwarded, to);
    };
    try {
      this.#targetScanner.scan(chunk, (type, end, body, length) => {
        const head = this.#expected[0];
        // What goes out in this message's place: nothing (a reply to a message of ours), our
        // refusal (the target raising it), the message masked, or (undefined) the message itself.
        let replacement: Buffer | undefined;
        if (head?.kind === 'swallow' && head.type === type) {
          replacement = NOTHING;
          this.#expected.shift();
        } else {
          if (head?.kind === 'refusal' && type === BackendType.ErrorResponse) replacement = head.bytes;
          this.#observe(type, body);
          if (replacement === undefined && body !== undefined) replacement = this.#masked(type, body, chunk);
          if (body !== undefined && (head?.kind === 'query' || head?.kind === 'execute') && head.trace.result !== undefined) {
            this.#sample(head.trace.result, type, replacement === undefined ? body : replacement.subarray(5));
          }
        }
        if (replacement !== undefined) {
          const start = end - length - 1;
          if (start < 0 && held !== undefined && start === -held.length) held = undefined; // it was all held back
          else if (start < forwarded) throw new Error('a message to replace began in bytes already sent to the client');
          else forward(start);
          parts.push(replacement);
          forwarded = end;
        }
        if (this.#expected[0]?.kind !== 'inject') return;
        // Gateway-made messages go in at this message boundary, in the target's place.
        forward(end);
        for (let next = this.#expected[0]; next?.kind === 'inject'; next = this.#expected[0]) {
          this.#expected.shift();
          parts.push(next.bytes);
          if (next.acknowledges) this.#acknowledges = true;
        }
      });
    } catch (error) {
      release?.();
      this.#log.error({ err: error }, 'target sent a message the gateway cannot relay');
      const tooLarge = error instanceof FramingError && error.code === 'message-too-large';
      this.terminate(
        new GatewayError(
          'target.lost',
          tooLarge
            ? `the target sent a message of ${error.length} bytes, above this gateway's max_message_length`
            : 'the target sent a malformed message',
        ),
      );
      return;
    }
    const next = this.#expected[0]?.kind;
    if ((this.#masker || next === 'swallow' || next === 'refusal') && this.#targetScanner.midMessage) {
      // The message under way may be one to cut out or rewrite: what comes before it goes on,
      // its start is kept until its end comes. (It began at or after `forwarded`, or in what was
      // held back last time when it is longer than this chunk: a message is cut or rewritten
      // only whole.)
      const start = chunk.length - this.#targetScanner.progress;
      if (start < 0 && held !== undefined && forwarded === 0) this.#heldBack = Buffer.concat([held, chunk]);
      else {
        forward(Math.max(forwarded, start));
        this.#heldBack = Buffer.from(chunk.subarray(forwarded));
      }
    } else {
      // The rest goes on at once, even the start of a message whose end is still to come.
      forward(chunk.length);
    }
    if (parts.length === 0) {
      release?.();
      return;
    }
    if (!parts.some((part) => within(part, chunk))) {
      // The pooled read buffer goes back now unless what is written still lies in it.
      release?.();
      release = undefined;
    }
    this.#toClient(parts.length === 1 ? parts[0]! : parts, release, this.#acknowledges);
  }

  /**
   * Writes to the client, in order. Bytes that tell the client statements are done (they hold a
   * ReadyForQuery) wait until the session's audit records are committed, and the target is not
   * read meanwhile. Fail closed: a session whose audit records cannot be committed ends.
   */
  #toClient(bytes: Buffer | readonly Buffer[], release: (() => void) | undefined, acknowledges: boolean): void {
    const committed = acknowledges ? this.#session.committed() : undefined;
    if (committed === undefined && this.#gate === undefined) {
      this.#write(bytes, release);
      return;
    }
    this.#target.pause();
    const gate: Promise<void> = (this.#gate ?? Promise.resolve())
      .then(() => committed)
      .then(
        () => {
          if (this.#gate === gate) {
            this.#gate = undefined;
            if (!this.#client.writableNeedDrain) this.#target.resume();
          }
          this.#write(bytes, release);
        },
        (error: unknown) => {
          release?.();
          this.#log.error({ err: error }, 'ending a session whose audit records cannot be committed');
          this.terminate(error instanceof GatewayError ? error : new GatewayError('internal', 'internal gateway error', { cause: error }));
        },
      );
    this.#gate = gate;
  }

  /** Parts go out in one write (writev), not copied together; `release` once the last is flushed (and with it every one before). */
  #write(bytes: Buffer | readonly Buffer[], release: (() => void) | undefined): void {
    if (this.#closed || this.#client.writableEnded) {
      release?.();
      return;
    }
    let room: boolean;
    if (Buffer.isBuffer(bytes)) room = this.#client.write(bytes, release);
    else {
      this.#client.cork();
      for (let i = 0; i < bytes.length - 1; i++) this.#client.write(bytes[i]!);
      room = this.#client.write(bytes[bytes.length - 1]!, release);
      this.#client.uncork();
    }
    if (!room) {
      this.#target.pause();
      this.#client.once('drain', () => this.#target.resume());
    }
  }

  /** What goes out in a message's place after masking; undefined: the bytes in `chunk`, as they are now. */
  #masked(type: number, body: Buffer, chunk: Buffer): Buffer | undefined {
    const rewritten = this.#masker?.rewrite(type, body);
    if (rewritten !== MASKED_IN_PLACE) return rewritten;
    // Masked where it lies: in the chunk, unless the message came in pieces (then its body is a copy).
    return within(body, chunk) ? undefined : framed(type, body);
  }

  /** What the recording keeps of a statement's result: its columns and first rows, as the client gets them. */
  #sample(result: ResultSample, type: number, body: Buffer): void {
    if (type === BackendType.DataRow) result.row(body, rowValues);
    else if (type === BackendType.RowDescription) {
      const names = columnNames(body);
      if (names !== undefined) result.columns(names);
    }
  }

  /** Follows the target's answers to close the statements they belong to. */
  #observe(type: number, body: Buffer | undefined): void {
    const head = this.#expected[0];
    switch (type) {
      case BackendType.DataRow:
        if (head?.kind === 'execute' && !head.described) {
          // Rows of an Execute are described by the Describe of its portal or statement.
          head.described = true;
          this.#masker?.use(head.portal, this.#portalStatements.get(head.portal));
        }
        if (head?.kind === 'query' || head?.kind === 'execute') head.trace.rows++;
        break;
      case BackendType.ParseComplete:
      case BackendType.BindComplete:
      case BackendType.CloseComplete:
      case BackendType.RowDescription:
      case BackendType.NoData:
        if (head?.kind === 'reply' && head.endsWith.includes(type)) {
          if (head.describes !== undefined) this.#masker?.describe(head.describes, type === BackendType.RowDescription ? body : undefined);
          this.#expected.shift();
        }
        break;
      case BackendType.CommandComplete: {
        const rows = rowsOfTag(body!.toString('utf8', 0, body!.length - 1));
        if (head?.kind === 'execute') this.#complete({ outcome: 'ok', rows: rows ?? head.trace.rows });
        else if (head?.kind === 'query' && rows !== undefined) head.rows = (head.rows ?? 0) + rows;
        break;
      }
      case BackendType.EmptyQueryResponse:
        if (head?.kind === 'execute') this.#complete({ outcome: 'ok', rows: 0 });
        break;
      case BackendType.PortalSuspended:
        if (head?.kind === 'execute') this.#complete({ outcome: 'ok', rows: head.trace.rows });
        break;
      case BackendType.ErrorResponse:
        this.#targetError(body!, head);
        break;
      case BackendType.ReadyForQuery:
        this.#acknowledges = true;
        this.#transactionStatus = body![0] ?? 0x49;
        this.#readyForQuery();
        break;
      case BackendType.ParameterStatus:
        this.#parameterStatus(body!);
        break;
    }
  }

  #parameterStatus(body: Buffer): void {
    let message;
    try {
      message = decodeBackend({ type: BackendType.ParameterStatus, body, raw: body });
    } catch (error) {
      if (error instanceof ProtocolError) return;
      throw error;
    }
    if (message.type === 'ParameterStatus' && message.name === 'standard_conforming_strings') {
      this.#backslashEscapes = message.value !== 'on';
    }
  }

  #complete(end: Parameters<StatementTrace['finish']>[0]): void {
    const head = this.#expected.shift();
    if (head?.kind === 'execute' || head?.kind === 'query') head.trace.finish(end);
  }

  #targetError(body: Buffer, head: Expected | undefined): void {
    const fields = readErrorFields(body);
    if (fields.severity === 'FATAL' || fields.severity === 'PANIC') this.#targetSaidFatal = true;
    const error = { code: fields.code ?? '', message: fields.message ?? '' };
    if (head?.kind === 'query') {
      head.error = error;
      return;
    }
    if (head?.kind === 'execute') {
      this.#complete({ outcome: 'error', rows: head.trace.rows, errorCode: error.code, errorMessage: error.message });
    } else if (head?.kind === 'reply' || head?.kind === 'refusal') {
      this.#expected.shift();
    }
    // The target skips to the next Sync, and so does what we expect of it (a refusal of ours
    // in that stretch included: the target would not have got that far either).
    for (let next = this.#expected[0]; next && next.kind !== 'sync'; next = this.#expected[0]) {
      this.#expected.shift();
      if (next.kind === 'execute')
        next.trace.finish({
          outcome: 'error',
          errorCode: error.code,
          errorMessage: 'not executed: an earlier message of the pipeline failed',
        });
    }
  }

  #readyForQuery(): void {
    this.#completeUpToReady();
    // Once the target has answered everything, its ParameterStatus messages said all there is.
    if (this.#settingUnsure && this.#expected.every((e) => e.kind === 'inject')) this.#settingUnsure = false;
  }

  #completeUpToReady(): void {
    for (;;) {
      const head = this.#expected[0];
      if (!head || head.kind === 'inject') return;
      this.#expected.shift();
      if (head.kind === 'query') {
        head.trace.finish(
          head.error
            ? { outcome: 'error', rows: head.rows, errorCode: head.error.code, errorMessage: head.error.message }
            : { outcome: 'ok', rows: head.rows ?? head.trace.rows },
        );
        return;
      }
      if (head.kind === 'sync') return;
      if (head.kind === 'execute') head.trace.finish({ outcome: 'error', errorMessage: 'no result before Sync' });
    }
  }

  #clientFault(error: unknown): void {
    this.#log.info({ err: error }, 'ending session after a client protocol error');
    this.terminate(error instanceof GatewayError ? error : new GatewayError('internal', 'internal gateway error', { cause: error }));
  }

  #targetGone(): void {
    if (this.#closed) return;
    if (this.#terminating) {
      this.#end('client terminated');
      return;
    }
    // A target that sent its own FATAL has already told the client why; otherwise we say it.
    if (this.#targetSaidFatal) this.#client.end();
    else this.#sayFatal(new GatewayError('target.lost', `lost the connection to target "${this.#session.info.connection.name}"`));
    this.#end('target disconnected');
  }

  /** Ends the client connection with a FATAL error, unless it would land inside a message of the target's. */
  #sayFatal(error: GatewayError): void {
    if (this.#targetScanner.midMessage) this.#client.destroy();
    else this.#client.end(renderFatal(error));
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const busy = this.#expected.length > 0;
    for (const expected of this.#expected.splice(0)) {
      if (expected.kind === 'query' || expected.kind === 'execute') expected.trace.finish({ outcome: 'cancelled', errorMessage: reason });
    }
    // An idle target is told goodbye. A busy one would go on running a statement nobody waits
    // for (or block writing its result): the statement is cancelled and the connection cut.
    if (busy) {
      this.#cancelTarget?.();
      this.#target.destroy();
    } else if (!this.#target.writableEnded) this.#target.end(TERMINATE);
    this.#onClosed?.(reason);
  }
}

type HoldVerdict = Extract<Verdict, { outcome: 'hold' }>;

const FLUSH = encodeFrontend({ type: 'Flush' });

/** A bound parameter as an approver reads it: its text, or its bytes in hex when not UTF-8 (binary format). */
function shownParam(value: Buffer | null): string | null {
  if (value === null) return null;
  const text = value.toString('utf8');
  return Buffer.byteLength(text) === value.length && !text.includes('\uFFFD') ? text : `\\x${value.toString('hex')}`;
}

/** Whether `part`'s bytes are bytes of `whole` (and not a copy of them). */
const within = (part: Buffer, whole: Buffer): boolean =>
  part.buffer === whole.buffer && part.byteOffset >= whole.byteOffset && part.byteOffset + part.length <= whole.byteOffset + whole.length;

/**
 * The fields of a target's error, for the record. The error itself goes on to the client as it
 * came; one the codec refuses (text in an encoding other than UTF-8) is recorded without them.
 */
function readErrorFields(body: Buffer): ReturnType<typeof errorFieldsToObject> {
  try {
    return errorFieldsToObject(decodeErrorFields(body));
  } catch (error) {
    if (error instanceof ProtocolError) return {};
    throw error;
  }
}

const BACKSLASH_REFUSED: Verdict = Object.freeze({
  outcome: 'deny',
  policy: 'standard-conforming-strings',
  reason:
    'blocked: standard_conforming_strings is off (or being changed) in this session, and Drawbridge reads strings as PostgreSQL does with it on, so it refuses statements with a backslash until the setting is on again',
});

/**
 * Text that may change standard_conforming_strings: naming it (also quoted), set_config, a
 * U&"…" identifier (which can spell it), RESET, DISCARD, and code that can do either (DO, CALL,
 * EXECUTE). Known limit: a function of the user's own that changes it, called in a pipeline
 * with a statement right behind it.
 */
const MAY_CHANGE_SETTING = /standard_conforming_strings|set_config|u&"|\b(?:reset|discard|do|call|execute)\b/i;

/** ReadyForQuery's status inside a transaction block. */
const TRANSACTION_OPEN = 0x54; // 'T'

/** A statement that makes the target raise our error, in its own words and SQLSTATE. */
export function raiseOnTarget(sqlstate: string, message: string): string {
  let tag: string;
  do tag = `drawbridge_${randomBytes(6).toString('hex')}`;
  while (message.includes(tag));
  return `DO $${tag}$ BEGIN RAISE EXCEPTION USING ERRCODE = '${sqlstate}', MESSAGE = $${tag}_m$${message}$${tag}_m$; END $${tag}$`;
}

const statusName = (status: number): 'I' | 'T' | 'E' => (status === 0x54 ? 'T' : status === 0x45 ? 'E' : 'I');

/** Collects outgoing frames, joining neighbours that are adjacent in the same chunk so most writes need no copy. */
class Spans {
  #parts: Buffer[] = [];

  add(bytes: Buffer): void {
    const last = this.#parts[this.#parts.length - 1];
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.length === bytes.byteOffset) {
      this.#parts[this.#parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + bytes.length);
    } else {
      this.#parts.push(bytes);
    }
  }

  take(): Buffer | undefined {
    const parts = this.#parts;
    if (parts.length === 0) return undefined;
    this.#parts = [];
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}
