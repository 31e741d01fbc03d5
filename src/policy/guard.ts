/**
 * The policy guard: every statement a client sends is classified with PostgreSQL's own parser
 * and decided by Cedar policy before a byte of it reaches the target. A text with several
 * statements is allowed only if every one of them is. What does not parse is `unknown`, which
 * no policy in the default pack permits: fail closed. A fast-path function call is the action
 * `sql:fastpath`, which nothing permits unless a policy names it.
 *
 * Two caches, both keyed by principal, its groups, connection, policy version and hour:
 * - by statement shape (literals replaced), so that a repeated statement costs a lookup. Not for
 *   UPDATE, DELETE and MERGE (also nested), whose "has a real WHERE" may depend on literal
 *   values (`WHERE id = 1 OR true` against `... OR false`), nor for what did not parse;
 * - by classification, so that those still skip Cedar (the costly part) when they classify
 *   alike: a decision depends on nothing else than the classification and the keys above.
 */

import { allow, type Clock, type Command, type Plan, type Verdict } from '../core/index.ts';
import type { Guard, SessionInfo } from '../session/pipeline.ts';
import { actionFor, type PolicyEngine, type PolicyOutcome, type PolicyRequest, type StatementInput } from './cedar/engine.ts';
import { planCovers, shape } from './plan.ts';
import { classify, initClassifier, type Classification } from './sql/pg-classifier.ts';
import { statementShape } from './sql/normalize.ts';

const UNCACHED_KINDS = new Set(['update', 'delete', 'merge', 'unknown']);

const FAST_PATH: StatementInput = Object.freeze({
  kind: 'fastpath',
  tablesRead: [],
  tablesWritten: [],
  functions: [],
  dangerousFunctions: [],
  dataModifying: true,
});

export interface SqlDecision {
  /** What the client is told: allowed, or refused with `blocked by policy "<id>": <reason> on <connection>`. */
  readonly verdict: Verdict;
  readonly classification: Classification;
  /** Each statement's outcome, in order, up to the first that is not allowed. */
  readonly decisions: readonly { readonly statement: StatementInput; readonly outcome: PolicyOutcome }[];
}

type Asker = Pick<PolicyRequest, 'principal' | 'connection' | 'now'>;

/**
 * Classifies `sql` and decides each statement; the one decision path of the gateway, the CLI and
 * the API. With `plan` (the session's grant is plan-scoped), see `planOutcome`.
 */
export function decideSql(engine: PolicyEngine, asker: Asker, sql: string, plan?: Plan): SqlDecision {
  return decideClassified(engine, asker, classify(sql), plan, sql);
}

function decideClassified(engine: PolicyEngine, asker: Asker, classification: Classification, plan: Plan | undefined, text: string): SqlDecision {
  const decisions: { statement: StatementInput; outcome: PolicyOutcome }[] = [];
  let verdict: Verdict = allow;
  const textShape = plan && classification.statements.length === 1 ? shape(text) : undefined;
  for (const statement of classification.statements) {
    const inPlan = plan && planCovers(plan, statement, textShape);
    const decided = engine.decide({ ...asker, statement, statementCount: classification.statements.length, plan: plan && { inPlan: inPlan === true } });
    const outcome = plan ? planOutcome(plan, inPlan === true, decided, statement) : decided;
    decisions.push({ statement, outcome });
    if (outcome.outcome !== 'allow') {
      verdict = refusal(outcome, asker.connection.name, classification.parseError);
      if (plan && !inPlan) verdict = { ...verdict, deviation: { plan: plan.id } } as Verdict;
      break;
    }
  }
  return { verdict, classification, decisions };
}

/**
 * Under a plan: a statement the plan covers needs no further approval (the plan's approval
 * stands for it), though what policy blocks stays blocked; one outside the plan is blocked, or
 * held where a policy with @approval says so.
 */
function planOutcome(plan: Plan, inPlan: boolean, outcome: PolicyOutcome, statement: StatementInput): PolicyOutcome {
  if (inPlan) return outcome.outcome === 'approval' ? { outcome: 'allow', policies: [`plan ${plan.id}`] } : outcome;
  if (outcome.outcome !== 'allow') return outcome;
  const tables = [...new Set([...statement.tablesWritten, ...statement.tablesRead])];
  return {
    outcome: 'deny',
    policy: 'plan',
    reason: `${actionFor(statement).slice(4)}${tables.length > 0 ? ` of ${tables.join(', ')}` : ''} is outside the approved plan ${plan.id}`,
  };
}

/** The verdict on a fast-path function call (PostgreSQL FunctionCall). */
export function decideFastPath(engine: PolicyEngine, asker: Asker): Verdict {
  const outcome = engine.decide({ ...asker, statement: FAST_PATH, statementCount: 1 });
  return outcome.outcome === 'allow' ? allow : refusal(outcome, asker.connection.name, undefined);
}

function refusal(outcome: Exclude<PolicyOutcome, { outcome: 'allow' }>, connection: string, parseError: string | undefined): Verdict {
  const because = parseError === undefined ? '' : ` (the statement does not parse: ${parseError})`;
  if (outcome.outcome === 'approval') {
    return {
      outcome: 'hold',
      policy: outcome.policy,
      approvers: outcome.approvers,
      reason: `held by policy "${outcome.policy}": ${outcome.reason} on ${connection} needs the approval of ${outcome.approvers}`,
    };
  }
  return { outcome: 'deny', policy: outcome.policy, reason: `blocked by policy "${outcome.policy}": ${outcome.reason} on ${connection}${because}` };
}

/**
 * True when the verdict may depend on literal values: UPDATE, DELETE or MERGE, also inside
 * PREPARE, EXPLAIN, ...; and code (a DO block's or a function's body is a string literal).
 */
function literalSensitive(statement: StatementInput): boolean {
  for (let s: StatementInput | undefined = statement; s; s = s.inner) {
    if (UNCACHED_KINDS.has(s.kind) || s.body !== undefined || s.dynamicSql === true) return true;
  }
  return false;
}

export interface PolicyGuardOptions {
  /** Verdicts kept; the oldest go first. */
  readonly cacheSize?: number;
}

export class PolicyGuard implements Guard {
  readonly #engine: () => PolicyEngine;
  readonly #clock: Clock;
  readonly #cache = new Map<string, Verdict>();
  readonly #byClassification = new Map<string, Verdict>();
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
    const engine = this.#engine();
    const now = this.#clock.now();
    const { grant, connection } = session;
    const asker: Asker = {
      principal: { name: grant.principal.name, kind: grant.principal.kind, groups: grant.groups },
      connection: { name: connection.name, type: 'postgres' },
      now,
    };
    if (command.kind === 'function-call') return decideFastPath(engine, asker);
    const hour = Math.floor(now / 3_600_000);
    // A plan's id names its steps (they never change): verdicts under a plan are cached apart.
    const who = `${engine.version}\0${hour}\0${grant.plan?.id ?? ''}\0${grant.principal.kind}\0${grant.principal.name}\0${grant.groups.join('\0')}\0${connection.name}`;
    const key = `${who}\0${statementShape(command.text)}`;
    const cached = this.#cache.get(key);
    if (cached) return cached;

    const classification = classify(command.text);
    const parsed = classification.parseError === undefined;
    // JSON of objects the classifier builds in a fixed property order: equal facts, equal keys.
    // A plan's template is matched on the text's shape, which the classification does not hold.
    const byClass = parsed && !(grant.plan?.steps.some((step) => step.template !== undefined) ?? false);
    const classKey = byClass ? `${who}\0${JSON.stringify(classification.statements)}` : undefined;
    let verdict = classKey === undefined ? undefined : this.#byClassification.get(classKey);
    if (verdict === undefined) {
      verdict = decideClassified(engine, asker, classification, grant.plan, command.text).verdict;
      if (classKey !== undefined) this.#remember(this.#byClassification, classKey, verdict);
    }
    if (parsed && !classification.statements.some(literalSensitive)) this.#remember(this.#cache, key, verdict);
    return verdict;
  }

  #remember(cache: Map<string, Verdict>, key: string, verdict: Verdict): void {
    if (this.#cacheSize <= 0) return;
    if (cache.size >= this.#cacheSize) cache.delete(cache.keys().next().value!);
    cache.set(key, verdict);
  }
}
