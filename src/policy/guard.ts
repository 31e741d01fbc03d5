/**
 * The policy guard: every statement a client sends is classified with PostgreSQL's own parser
 * and decided by Cedar policy before a byte of it reaches the target. A text with several
 * statements is allowed only if every one of them is. What does not parse is `unknown`, which
 * no policy in the default pack permits: fail closed.
 *
 * Verdicts are cached by statement shape (literals replaced), principal, connection, policy
 * version and hour, so that repeated statements cost a lookup. Not cached: UPDATE, DELETE and
 * MERGE, whose "has a real WHERE" depends on literal values (`WHERE 1=1` against `WHERE 1=2`).
 */

import { allow, type Clock, type Command, type Verdict } from '../core/index.ts';
import type { Guard, SessionInfo } from '../session/pipeline.ts';
import type { PolicyEngine } from './cedar/engine.ts';
import { classify, initClassifier } from './sql/pg-classifier.ts';
import { statementShape } from './sql/normalize.ts';

const UNCACHED_KINDS = new Set(['update', 'delete', 'merge', 'unknown']);

export interface PolicyGuardOptions {
  /** Verdicts kept; the oldest go first. */
  readonly cacheSize?: number;
}

export class PolicyGuard implements Guard {
  readonly #engine: () => PolicyEngine;
  readonly #clock: Clock;
  readonly #cache = new Map<string, Verdict>();
  readonly #cacheSize: number;

  /** Loads the SQL parser (WebAssembly) once, then builds the guard. */
  static async create(engine: () => PolicyEngine, clock: Clock, options: PolicyGuardOptions = {}): Promise<PolicyGuard> {
    await initClassifier();
    return new PolicyGuard(engine, clock, options);
  }

  /** `engine` returns the policies in force now (they reload without a restart). */
  constructor(engine: () => PolicyEngine, clock: Clock, options: PolicyGuardOptions = {}) {
    this.#engine = engine;
    this.#clock = clock;
    this.#cacheSize = options.cacheSize ?? 10_000;
  }

  decide(session: SessionInfo, command: Command): Verdict {
    const connection = session.connection.name;
    if (command.kind === 'function-call') {
      return {
        outcome: 'deny',
        policy: 'no-fast-path',
        reason: `blocked by policy "no-fast-path": fast-path function calls are not allowed on ${connection}`,
      };
    }
    const engine = this.#engine();
    const now = this.#clock.now();
    const hour = Math.floor(now / 3_600_000);
    const principal = session.grant.principal;
    const key = `${engine.version}\0${hour}\0${principal.kind}\0${principal.name}\0${connection}\0${statementShape(command.text)}`;
    const cached = this.#cache.get(key);
    if (cached) return cached;

    const classification = classify(command.text);
    let verdict: Verdict = allow;
    let cacheable = true;
    for (const statement of classification.statements) {
      if (UNCACHED_KINDS.has(statement.kind)) cacheable = false;
      const outcome = engine.decide({
        principal: { name: principal.name, kind: principal.kind, groups: [] },
        connection: { name: connection, type: 'postgres' },
        statement,
        statementCount: classification.statements.length,
        now,
      });
      if (outcome.outcome === 'deny') {
        verdict = {
          outcome: 'deny',
          policy: outcome.policy,
          reason: `blocked by policy "${outcome.policy}": ${outcome.reason} on ${connection}`,
        };
        break;
      }
      if (outcome.outcome === 'approval') {
        // Until approvals exist, a statement that would need one is refused, and says so.
        verdict = {
          outcome: 'deny',
          policy: outcome.policy,
          reason: `blocked by policy "${outcome.policy}": ${outcome.reason} on ${connection} without the approval of ${outcome.approvers}, which this gateway cannot ask for yet`,
        };
        break;
      }
    }
    if (cacheable) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, verdict);
    }
    return verdict;
  }
}
