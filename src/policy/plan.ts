/**
 * Plans: what an agent declares it will do, checked when it asks (`parsePlan`) and on every
 * statement of a session whose grant carries one (`planCovers`). Pure and synchronous, like the
 * rest of policy/.
 *
 * A statement is covered when one step of the plan names its action (or a group holding it) and
 * every table it writes, when the tables it reads are named by that step or by a step that
 * reads, and, for a step with a template, when its shape (literals and parameters aside) is the
 * template's. Its inner statements (EXPLAIN, PREPARE, DECLARE, CREATE ... AS) and code bodies
 * are held to the same rule. Statements that touch no table and change nothing (`BEGIN`,
 * `SET`, `SELECT now()`) are covered by any plan, unless they call a dangerous function.
 * Nothing that runs SQL out of sight (dynamic SQL) or did not parse is covered: fail closed.
 */

import type { Plan, PlanStep } from '../core/index.ts';
import { ACTIONS, actionFor, actionIn, type StatementInput } from './cedar/engine.ts';
import { classify } from './sql/pg-classifier.ts';
import { statementShape } from './sql/normalize.ts';

export const MAX_PLAN_STEPS = 50;
export const MAX_PLAN_TABLES = 100;
export const MAX_TEMPLATE_LENGTH = 8 * 1024;
/** What a step may name: statement actions and groups, never the ones nothing covers. */
const NOT_PLANNABLE = new Set(['sql:unknown', 'sql:fastpath', 'data:unmasked', 'sql:any']);
const TABLE = /^(?:"[^"\u0000]{1,63}"|[A-Za-z_][\w$]{0,62})(?:\.(?:"[^"\u0000]{1,63}"|[A-Za-z_][\w$]{0,62}))?$/u;

/** A plan the gateway cannot take: the message says which step and why. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/** A plan's steps as the agent sent them (JSON), checked and normalized; throws PlanError. */
export function parsePlanSteps(input: unknown): PlanStep[] {
  if (!Array.isArray(input) || input.length === 0) throw new PlanError('a plan needs at least one step');
  if (input.length > MAX_PLAN_STEPS) throw new PlanError(`a plan has at most ${MAX_PLAN_STEPS} steps`);
  return input.map((raw: unknown, index) => {
    const at = `step ${index + 1}`;
    if (raw === null || typeof raw !== 'object') throw new PlanError(`${at}: expected {actions, tables, template?}`);
    const { actions, tables, template } = raw as Record<string, unknown>;
    if (!Array.isArray(actions) || actions.length === 0) throw new PlanError(`${at}: name at least one action (select, update, read, write, ...)`);
    const named = actions.map((a) => {
      const action = typeof a === 'string' ? a.trim().toLowerCase() : '';
      if (!ACTIONS.has(`sql:${action}`) || NOT_PLANNABLE.has(`sql:${action}`))
        throw new PlanError(`${at}: "${String(a)}" is not an action a plan may name (select, insert, update, delete, read, write, ddl, ...)`);
      return action;
    });
    if (!Array.isArray(tables) || tables.length > MAX_PLAN_TABLES) throw new PlanError(`${at}: tables is a list of at most ${MAX_PLAN_TABLES} names`);
    const names = tables.map((t) => {
      if (typeof t !== 'string' || !TABLE.test(t.trim())) throw new PlanError(`${at}: "${String(t)}" is not a table name`);
      return t.trim();
    });
    const step: PlanStep = { actions: [...new Set(named)], tables: [...new Set(names)] };
    if (template === undefined || template === null || template === '') return step;
    if (typeof template !== 'string' || template.length > MAX_TEMPLATE_LENGTH)
      throw new PlanError(`${at}: the template is one statement of at most ${MAX_TEMPLATE_LENGTH} characters`);
    const parsed = classify(template);
    if (parsed.parseError !== undefined) throw new PlanError(`${at}: the template does not parse: ${parsed.parseError}`);
    if (parsed.statements.length !== 1) throw new PlanError(`${at}: the template is one statement`);
    const withTemplate = { ...step, template: template.trim() };
    if (!planCovers({ id: '', steps: [withTemplate] }, parsed.statements[0]!, shape(template)))
      throw new PlanError(`${at}: the template does something the step does not name (its actions and tables)`);
    return withTemplate;
  });
}

/** A statement's shape for templates: literals and parameters ($1) alike. */
export function shape(sql: string): string {
  return statementShape(sql)
    .split(' ')
    .map((unit) => (/^\$\d+$/.test(unit) ? '?' : unit))
    .join(' ');
}

/** Whether `plan` covers `statement`; `textShape`: shape(text) of the command when it is one statement, else undefined. */
export function planCovers(plan: Plan, statement: StatementInput, textShape: string | undefined, depth = 0): boolean {
  if (depth > 8 || statement.dynamicSql === true || statement.dangerousFunctions.length > 0) return false;
  const action = actionFor(statement);
  if (action === 'sql:unknown' || action === 'sql:fastpath') return false;
  // Inner statements and code are what really runs: each is held to the plan (no template: its text is not the command's).
  if (statement.inner && !planCovers(plan, statement.inner, undefined, depth + 1)) return false;
  for (const inner of statement.body ?? []) if (!planCovers(plan, inner, undefined, depth + 1)) return false;
  const written = statement.tablesWritten.map(unqualified);
  const read = statement.tablesRead.map(unqualified);
  if (written.length === 0 && read.length === 0 && !statement.dataModifying) {
    if (statement.inner || actionIn(action, 'sql:session') || actionIn(action, 'sql:read')) return true;
  }
  const readable = new Set<string>();
  for (const step of plan.steps) {
    if (step.actions.some((a) => actionIn('sql:select', `sql:${a}`))) for (const t of step.tables) readable.add(tableKey(t));
  }
  return plan.steps.some((step) => {
    if (!step.actions.some((a) => actionIn(action, `sql:${a}`))) return false;
    const own = new Set(step.tables.map(tableKey));
    if (!written.every((t) => own.has(t)) || !read.every((t) => own.has(t) || readable.has(t))) return false;
    return step.template === undefined || (textShape !== undefined && textShape === shape(step.template));
  });
}

/**
 * A table a plan names, as the classifier names tables: unquoted parts folded to lower case
 * (`ORDERS` is `orders`, `"Orders"` is `Orders`), and `public.` left out.
 */
function tableKey(name: string): string {
  const parts = name.match(/"[^"]*"|[^.]+/g) ?? [name];
  return unqualified(parts.map((p) => (p.startsWith('"') ? p.slice(1, -1) : p.toLowerCase())).join('.'));
}

/** A table as the classifier names it (folded as PostgreSQL folds it), without `public.`. */
const unqualified = (name: string): string => (name.startsWith('public.') ? name.slice(7) : name);

/** One line a person reads: `read orders, refunds; update refunds as "UPDATE refunds SET …"`. */
export function describePlan(steps: readonly PlanStep[]): string {
  return steps
    .map((step) => {
      const what = `${step.actions.join('/')} ${step.tables.length > 0 ? step.tables.join(', ') : '(no table)'}`;
      return step.template === undefined ? what : `${what} as "${step.template}"`;
    })
    .join('; ');
}
