/**
 * The protocol-agnostic pipeline every session goes through: a protocol frontend identifies
 * the client, opens a `LiveSession`, asks it to decide on each command, and reports how each
 * command ended. Written once; protocols supply only their verbs (how to read a password, how
 * to render an error), never their own idea of what is allowed.
 */

import { DEFAULT_RESULT_BYTES, ResultSample } from '../recording/result-sample.ts';
import { allow, GatewayError, type AccessGrant, type Clock, type Command, type Connection, type Verdict } from '../core/index.ts';
import type { Approvals, Held } from '../approvals/approvals.ts';
import type { AuditEvent, AuditLog } from '../audit/audit-log.ts';
import type { ColumnAction } from '../policy/masking/columns.ts';
import type { Recorder } from '../recording/recorder.ts';
import { StatementDetails, type StatementOutcome } from '../store/index.ts';

/** Decides on every command: the policy guard, or a test's own. */
export interface Guard {
  decide(session: SessionInfo, command: Command): Verdict | Promise<Verdict>;
}

export const allowAllGuard: Guard = { decide: () => allow };

export interface SessionInfo {
  readonly id: string;
  readonly protocol: 'postgres';
  readonly grant: AccessGrant;
  readonly connection: Connection;
  readonly clientAddress: string;
  readonly startedAt: number;
}

export interface StatementEnd {
  readonly outcome: StatementOutcome;
  readonly rows?: number | undefined;
  readonly errorCode?: string | undefined;
  readonly errorMessage?: string | undefined;
}

/** What masking one value gave: its text (null: the value becomes SQL NULL) and what was found. */
export interface Masked {
  readonly text: string | null;
  readonly changed: boolean;
  readonly findings: readonly string[];
}

/** Masks one text value: what a session's results and records go through (see policy/masking). */
export type MaskText = (text: string) => Masked;

/**
 * Masks the UTF-8 text at `bytes[start, end)`: undefined when nothing could be found (not
 * decoded); `written` when the masks were written over the bytes (each kept its length).
 * `candidates`: what `fields` gave for it, when it is a field of a COPY line.
 */
export type MaskBytes = (
  bytes: Buffer,
  start: number,
  end: number,
  candidates?: number,
) => Masked | { readonly written: true; readonly findings: readonly string[] } | undefined;

/** How one session's data is masked: by content, and by column name where a rule says. */
export interface SessionMasking {
  readonly text: MaskText;
  readonly bytes: MaskBytes;
  /**
   * The fields of the line of COPY text or csv at `bytes[start, end)` (split at tabs, commas and
   * the line end) in which something may be found, in one pass: start, end and candidates of each,
   * three numbers apiece in `out`; returns how many.
   */
  readonly fields: (bytes: Buffer, start: number, end: number, out: number[]) => number;
  readonly column: (name: string) => ColumnAction | undefined;
}

export interface PipelineDeps {
  readonly guard: Guard;
  /**
   * How a session's data is masked, decided once when it opens (a principal may be exempt by
   * policy); undefined: not masked. Recordings and audit events of a masked session hold
   * masked text only.
   */
  readonly masking?: (session: SessionInfo) => SessionMasking | undefined;
  readonly recorder: Recorder;
  readonly clock: Clock;
  readonly audit: AuditLog;
  /**
   * How much of each statement's result a masked session's recording keeps (0: none; default
   * DEFAULT_RESULT_BYTES). Sessions exempt from masking keep none: their values are never recorded.
   */
  readonly resultBytes?: number;
  /**
   * Which statements are audit records: 'all' (the default), each statement sent to a target
   * (`command.allowed`) and each refused; 'refused', the refused ones only.
   */
  readonly auditStatements?: 'all' | 'refused';
  /**
   * True: a session's audit records are committed before the protocol tells its client a
   * statement is done (`LiveSession.committed`). False (the gateway's default,
   * `audit.acknowledge: at-once`): they are committed within the audit log's commit delay, and a
   * gateway killed in between loses them; one that fails still ends the session at its next answer.
   */
  readonly acknowledgeAfterCommit?: boolean;
  /** Where held statements wait for a person's decision; undefined: a statement policy holds is refused. */
  readonly approvals?: Approvals | undefined;
}

export interface LoginFailure {
  readonly protocol: SessionInfo['protocol'];
  readonly user: string;
  readonly connection: string;
  readonly clientAddress: string;
  readonly code: string;
  readonly reason: string;
}

export class Pipeline {
  readonly #deps: PipelineDeps;
  readonly #live = new Set<LiveSession>();

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
  }

  /** Ends every live session with an error its client can read, for a gateway that stops. */
  shutdown(): void {
    for (const session of this.#live)
      session.terminate(new GatewayError('session.terminated', 'terminating connection due to gateway shutdown'));
  }

  /** Ends the live sessions that use a grant; returns how many there were. */
  terminateGrant(grantId: string, why: string): number {
    let ended = 0;
    for (const session of this.#live) {
      if (session.info.grant.id !== grantId) continue;
      session.terminate(new GatewayError('session.terminated', `terminating connection: ${why}`));
      ended++;
    }
    return ended;
  }

  /** A client that could not log in: on record, with the reason the client was not told. */
  loginFailed(failure: LoginFailure): void {
    this.#deps.audit.note({
      actor: failure.user,
      action: 'login.failed',
      subject: failure.connection,
      outcome: 'failure',
      details: { protocol: failure.protocol, clientAddress: failure.clientAddress, code: failure.code, reason: failure.reason },
    });
  }

  async open(fields: Omit<SessionInfo, 'id' | 'startedAt'>): Promise<LiveSession> {
    const startedAt = this.#deps.clock.now();
    const id = await this.#deps.recorder.startSession({
      protocol: fields.protocol,
      principal: fields.grant.principal.name,
      connection: fields.connection.name,
      grantId: fields.grant.id,
      clientAddress: fields.clientAddress,
      startedAt,
    });
    const info = { ...fields, id, startedAt };
    const session = new LiveSession(info, this.#deps, () => this.#live.delete(session), this.#deps.masking?.(info));
    this.#live.add(session);
    session.audit({
      actor: fields.grant.principal.name,
      action: 'session.started',
      subject: id,
      outcome: 'success',
      details: {
        protocol: fields.protocol,
        connection: fields.connection.name,
        grant: fields.grant.id,
        clientAddress: fields.clientAddress,
      },
    });
    // The client is told it is in only once that is on record.
    try {
      await session.committed();
    } catch (error) {
      session.close('the audit log could not be written');
      throw error;
    }
    return session;
  }
}

export class LiveSession {
  readonly info: SessionInfo;
  readonly #deps: PipelineDeps;
  readonly #onClose: () => void;
  #seq = 0;
  #closed = false;
  #terminate: ((error: GatewayError) => void) | undefined;
  /** The protocol's verb for telling the client something while it waits (PostgreSQL: a NOTICE). */
  #notice: ((text: string) => void) | undefined;
  /** The statement held for approval now, if any. */
  #held: Held | undefined;
  #expiry: NodeJS.Timeout | undefined;
  /** How what the protocol sends the client is masked; undefined: this session's data is not masked. */
  readonly masking: SessionMasking | undefined;
  /** How many values of each kind were masked, for the session's end record. */
  readonly #masked = new Map<string, number>();
  /** The session's last audit append not yet committed (appends commit in order). */
  #uncommitted: Promise<void> | undefined;
  /** Why an audit record of this session could not be committed: the session acknowledges nothing more. */
  #auditFailure: GatewayError | undefined;
  /**
   * Records of this session waiting for the protocol to pass on what it is handling (`#later`),
   * in the order they were made.
   */
  #deferred: (() => void)[] = [];

  constructor(info: SessionInfo, deps: PipelineDeps, onClose: () => void = () => {}, masking?: SessionMasking) {
    this.info = info;
    this.#deps = deps;
    this.#onClose = onClose;
    this.masking = masking;
  }

  /**
   * Appends one of this session's audit records. When acknowledgements wait for the commit
   * (`acknowledgeAfterCommit`), `committed` waits for it; otherwise it does not, but a record
   * that could not be committed still fails the next acknowledgement.
   */
  audit(event: AuditEvent): void {
    if (this.#deps.acknowledgeAfterCommit === false) {
      // After the records deferred before it: the log keeps the session's events in order.
      if (this.#deferred.length > 0) this.#later(() => this.#deps.audit.note(event, this.#failed));
      else this.#deps.audit.note(event, this.#failed); // once per statement: no promise, no closure of its own
      return;
    }
    const appended = this.#deps.audit.append(event);
    this.#uncommitted = appended;
    const settled = () => {
      if (this.#uncommitted === appended) this.#uncommitted = undefined;
    };
    appended.then(settled, (error: unknown) => (this.#failed(error), settled()));
  }

  /** An audit record of this session could not be committed: it acknowledges nothing more. */
  readonly #failed = (error: unknown): void => {
    this.#auditFailure ??= new GatewayError('audit.unavailable', 'the audit log cannot be written: statements are not run unrecorded', {
      cause: error,
    });
  };

  /**
   * Makes a record of this session once the protocol has passed on what it is handling (a
   * microtask: after the callback that read the bytes, which wrote them on): the target gets the
   * statement, and the client its answer, without waiting for our records of them; the records
   * keep their order. Fail closed: a record that cannot be made is an audit failure.
   */
  #later(work: () => void): void {
    if (this.#deferred.push(work) === 1) queueMicrotask(this.#runDeferred);
  }

  readonly #runDeferred = (): void => {
    const deferred = this.#deferred;
    this.#deferred = [];
    for (const work of deferred) {
      try {
        work();
      } catch (error) {
        this.#failed(error);
      }
    }
  };

  /**
   * What a protocol awaits before it tells the client a statement is done (PostgreSQL:
   * ReadyForQuery): resolves once every audit record of the session so far is committed;
   * undefined when none is waiting (always, unless acknowledgements wait for the commit).
   * Rejects with `audit.unavailable` once one could not be committed. Fail closed: the protocol
   * then ends the session.
   */
  committed(): Promise<void> | undefined {
    if (this.#auditFailure) return Promise.reject(this.#auditFailure);
    const uncommitted = this.#uncommitted;
    if (uncommitted === undefined) return undefined;
    this.#deps.audit.commit(); // the client waits: no commit delay
    return uncommitted.then(
      () => (this.#auditFailure ? Promise.reject(this.#auditFailure) : undefined),
      () => Promise.reject(this.#auditFailure),
    );
  }

  /**
   * The protocol's report of what it masked: how many values of a kind (never the values). Reported
   * in batches (per result, and at the end), not per value: a stream of masked rows costs no map update per row.
   */
  masked(kind: string, count: number): void {
    this.#masked.set(kind, (this.#masked.get(kind) ?? 0) + count);
  }

  /** Text for our own records: masked like the client's results, when the session is. */
  #redact(text: string): string;
  #redact(text: string | undefined): string | undefined;
  #redact(text: string | undefined): string | undefined {
    if (text === undefined || this.masking === undefined) return text;
    return this.masking.text(text).text ?? '****';
  }

  /**
   * The protocol's verb for ending the session from the gateway's side. The session ends when
   * its grant expires, wherever the client is in its work.
   */
  onTerminate(terminate: (error: GatewayError) => void): void {
    this.#terminate = terminate;
    this.#armExpiry();
  }

  /** Ends the session from the gateway's side, through the protocol's verb. */
  terminate(error: GatewayError): void {
    if (this.#closed || !this.#terminate) return;
    this.audit({
      actor: 'gateway',
      action: 'session.terminated',
      subject: this.info.id,
      outcome: 'success',
      details: { principal: this.info.grant.principal.name, grant: this.info.grant.id, reason: error.message },
    });
    this.#terminate(error);
  }

  #armExpiry(): void {
    const remaining = Math.max(0, this.info.grant.expiresAt - this.#deps.clock.now());
    // Timers hold at most 2^31-1 ms (about 24.8 days): a longer grant is checked again then.
    const wait = Math.min(remaining, 2 ** 31 - 1);
    this.#expiry = setTimeout(() => {
      if (wait < remaining) this.#armExpiry();
      else this.terminate(new GatewayError('session.terminated', `terminating connection: access grant ${this.info.grant.id} expired`));
    }, wait);
    this.#expiry.unref();
  }

  /** The guard's verdict; a `hold` is for the protocol to pass to `hold` when the statement is to run. */
  decide(command: Command): Verdict | Promise<Verdict> {
    const verdict = this.#deps.guard.decide(this.info, command);
    if (this.info.grant.plan === undefined) return verdict;
    return verdict instanceof Promise ? verdict.then((v) => this.#deviation(command, v)) : this.#deviation(command, verdict);
  }

  /** A statement outside the grant's plan, refused or held, is a `plan.deviation` event. */
  #deviation(command: Command, verdict: Verdict): Verdict {
    if (verdict.outcome === 'allow' || verdict.deviation === undefined) return verdict;
    this.audit({
      actor: this.info.grant.principal.name,
      action: 'plan.deviation',
      subject: `plan:${verdict.deviation.plan}`,
      outcome: 'failure',
      details: {
        connection: this.info.connection.name,
        session: this.info.id,
        statement: this.#redact(command.text),
        verdict: verdict.outcome,
        reason: this.#redact(verdict.reason),
      },
    });
    return verdict;
  }

  /** The protocol's verb for a word to the client while a statement is held. */
  onNotice(notice: (text: string) => void): void {
    this.#notice = notice;
  }

  /**
   * Holds a statement until a person decides (approvals/approvals.ts): allow once approved;
   * deny when denied, expired or cancelled, saying which and why. The client is told at once
   * which approval it waits for, and where. Without an approvals desk the statement is refused.
   */
  async hold(text: string, params: readonly (string | null)[] | undefined, verdict: Extract<Verdict, { outcome: 'hold' }>): Promise<Verdict> {
    const approvals = this.#deps.approvals;
    if (!approvals) return { outcome: 'deny', policy: verdict.policy, reason: `${verdict.reason}, and this gateway takes no approvals` };
    const held = await approvals.hold({
      requester: this.info.grant.principal.name,
      connection: this.info.connection.name,
      sessionId: this.info.id,
      statement: text,
      params,
      // Approvers, the audit log and the webhooks see what this session's client would: masked.
      shown: this.masking && { statement: this.#redact(text), params: params?.map((p) => (p === null ? null : this.#redact(p))) },
      policy: verdict.policy,
      reason: verdict.reason,
      approvers: verdict.approvers,
    });
    const id = held.approval.id;
    if (this.#closed) {
      held.cancel('the session ended while the statement was held');
    } else {
      this.#held = held;
      // The blast-radius preview, when the target could tell: "— about 1,204 rows would change".
      const preview = held.approval.preview?.['text'];
      this.#notice?.(`waiting for approval #${id} (${held.url}): ${verdict.reason}${typeof preview === 'string' ? ` — ${preview}` : ''}`);
    }
    const decision = await held.decision;
    this.#held = undefined;
    if (decision.status === 'approved') return allow;
    const why =
      decision.status === 'denied'
        ? `approval #${id} was denied by ${decision.by}: ${decision.reason}`
        : decision.status === 'expired'
          ? `approval #${id} expired: ${decision.reason}`
          : `approval #${id} was cancelled: ${decision.reason}`;
    return { outcome: 'deny', policy: verdict.policy, reason: why };
  }

  /**
   * Marks the start of a statement sent to the target, and puts it on record (`command.allowed`,
   * unless the audit log keeps refusals only); call `finish` on the result exactly once.
   */
  begin(text: string): StatementTrace {
    const trace = this.#trace(text);
    if (this.#deps.auditStatements === 'refused') return trace;
    if (this.#deps.acknowledgeAfterCommit === false) {
      // Nobody waits for it: put on record once the statement is on its way to the target.
      this.#later(() => this.#allowed(trace));
      return trace;
    }
    this.#allowed(trace);
    // Committed while the target works, so that its answer seldom waits.
    this.#deps.audit.commit();
    return trace;
  }

  #allowed(trace: StatementTrace): void {
    this.audit({
      actor: this.info.grant.principal.name,
      action: 'command.allowed',
      subject: this.info.id,
      outcome: 'success',
      // Encoded where the record is written, not on this thread (store/audit-batches.ts).
      details: new StatementDetails(this.info.connection.name, trace.seq, this.#shown(trace)),
    });
  }

  /** The statement's text for our records (masked when the session is), worked out once for the recording and the audit log. */
  #shown(trace: StatementTrace): string {
    return (trace.shown ??= this.#redact(trace.text));
  }

  #trace(text: string): StatementTrace {
    const trace = new StatementTrace(this, text, ++this.#seq, this.#deps.clock.now());
    const bytes = this.#deps.resultBytes ?? DEFAULT_RESULT_BYTES;
    // Only what was masked is kept: an exempt session's values stay out of our records.
    if (this.masking !== undefined && bytes > 0 && this.#deps.recorder.keepsStatements) trace.result = new ResultSample(bytes);
    return trace;
  }

  /** Records a statement that never reached the target, and puts the refusal on record. */
  refuse(text: string, reason: string, code: 'command.denied' | 'command.unreadable' = 'command.denied', policy?: string): void {
    const trace = this.#trace(text);
    trace.finish({ outcome: 'denied', errorCode: code, errorMessage: reason });
    this.audit({
      actor: this.info.grant.principal.name,
      action: 'command.denied',
      subject: this.info.id,
      outcome: 'failure',
      // Keys in canonical order, as in `begin`: the chain encodes them without sorting (audit/chain.ts).
      details: {
        code,
        connection: this.info.connection.name,
        policy,
        reason: this.#redact(reason),
        seq: trace.seq,
        statement: this.#shown(trace),
      },
    });
  }

  /** Records a statement that ended (once the protocol has passed its end on to the client). */
  record(trace: StatementTrace, end: StatementEnd): void {
    if (!this.#deps.recorder.keepsStatements) return;
    const now = this.#deps.clock.now();
    this.#later(() => this.#record(trace, end, now));
  }

  #record(trace: StatementTrace, end: StatementEnd, now: number): void {
    this.#deps.recorder.statement({
      sessionId: this.info.id,
      seq: trace.seq,
      text: this.#shown(trace),
      startedAt: trace.startedAt,
      durationMs: now - trace.startedAt,
      rows: end.rows,
      outcome: end.outcome,
      errorCode: end.errorCode,
      errorMessage: this.#redact(end.errorMessage),
      result: trace.result?.record(),
    });
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#expiry);
    this.#held?.cancel(`the session ended while the statement was held (${reason})`);
    this.#onClose();
    this.audit({
      actor: this.info.grant.principal.name,
      action: 'session.ended',
      subject: this.info.id,
      outcome: 'success',
      details: { reason, ...(this.#masked.size > 0 ? { masked: Object.fromEntries(this.#masked) } : {}) },
    });
    const at = this.#deps.clock.now();
    // After its statements: a reader never sees an ended session grow.
    if (this.#deferred.length > 0) this.#later(() => this.#deps.recorder.endSession(this.info.id, at, reason));
    else this.#deps.recorder.endSession(this.info.id, at, reason);
  }
}

export class StatementTrace {
  readonly #session: LiveSession;
  readonly text: string;
  readonly seq: number;
  readonly startedAt: number;
  rows = 0;
  /** What the protocol hands over of the result, for the recording (masked sessions only). */
  result: ResultSample | undefined;
  /** Its text as our records hold it (masked when the session is). */
  shown: string | undefined;
  #done = false;

  constructor(session: LiveSession, text: string, seq: number, startedAt: number) {
    this.#session = session;
    this.text = text;
    this.seq = seq;
    this.startedAt = startedAt;
  }

  finish(end: StatementEnd): void {
    if (this.#done) return;
    this.#done = true;
    this.#session.record(this, end);
  }
}
