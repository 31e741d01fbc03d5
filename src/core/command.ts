/**
 * A `Command` is one request of a client, in protocol-neutral terms: what the guard decides on
 * and what the recorder writes down. Protocols build commands from their messages.
 */

export type CommandKind =
  /** A query string as the client sent it; may hold several statements. */
  | 'query'
  /** A statement prepared for later execution (PostgreSQL Parse). */
  | 'prepare'
  /** A call of a server function by identifier (PostgreSQL fast-path FunctionCall). */
  | 'function-call';

export interface Command {
  readonly kind: CommandKind;
  /** The statement text, or for a function call a description of it. */
  readonly text: string;
  /** The name a prepared statement is kept under ('' for the unnamed one). */
  readonly statementName?: string;
}

export type Verdict =
  | { readonly outcome: 'allow' }
  | { readonly outcome: 'deny'; readonly reason: string; readonly policy?: string; readonly deviation?: PlanDeviation }
  /** Runs only once a member of `approvers` approves it (session/pipeline.ts holds it). */
  | {
      readonly outcome: 'hold';
      readonly reason: string;
      readonly policy: string;
      readonly approvers: string;
      readonly deviation?: PlanDeviation;
    };

/** A statement that the plan of the session's grant does not cover (refused or held: an audit event either way). */
export interface PlanDeviation {
  readonly plan: string;
}

export const allow: Verdict = Object.freeze({ outcome: 'allow' });
