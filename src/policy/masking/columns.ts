/**
 * Column rules: masking by name on top of masking by content. A rule names result columns (a
 * name or a `*` pattern, case-insensitive, optionally on one connection) and says what their
 * values get, whatever they hold: `mask` (the whole value, with a strategy), `null` (SQL NULL,
 * for any type) or `never` (no masking by content: a column known to be safe that looks like
 * something, an order reference shaped like a phone number).
 *
 * Guarantees: pure; rules are compiled once and the first rule that matches wins, in the order
 * written. A `hash` rule needs the plan's salt (checked when compiled).
 *
 * Known limits: a rule matches the column's name as the result carries it (an alias renames
 * it), not the table it came from.
 */

import { FULL_MASK, hashMask, maskableFields, maskBytes, maskText, partialMask, type MaskingPlan } from './strategies.ts';
import { MaskingConfigError } from './detectors.ts';

export interface ColumnRuleConfig {
  /** The result column's name, or a pattern with `*` (any characters). */
  readonly column: string;
  /** Only on this connection; every connection when absent. */
  readonly connection?: string;
  readonly action: 'mask' | 'null' | 'never';
  /** For `mask`: how the whole value is masked (default `full`). */
  readonly strategy?: 'partial' | 'full' | 'hash';
}

export type ColumnAction =
  | { readonly action: 'never' }
  | { readonly action: 'null' }
  | { readonly action: 'mask'; readonly apply: (value: string) => string };

export type ColumnRules = (connection: string, column: string) => ColumnAction | undefined;

const NEVER: ColumnAction = Object.freeze({ action: 'never' });
const NULL: ColumnAction = Object.freeze({ action: 'null' });

/**
 * What a session masks with under a compiled plan and its column rules: values by content (text,
 * bytes where they lie, the fields of a COPY line) with the plan, result columns by name with the
 * rules of the session's connection. The plan's functions are made once, the column lookup per
 * connection asked for.
 */
export function planMasking(plan: MaskingPlan, rules: ColumnRules) {
  const text = (value: string) => maskText(value, plan);
  const bytes = (value: Buffer, start: number, end: number, candidates?: number) => maskBytes(value, start, end, plan, candidates);
  const fields = (value: Buffer, start: number, end: number, out: number[]) => maskableFields(value, start, end, out, plan);
  return (connection: string) => ({ text, bytes, fields, column: (name: string) => rules(connection, name) });
}

export function compileColumnRules(rules: readonly ColumnRuleConfig[], plan: MaskingPlan): ColumnRules {
  const compiled = rules.map((rule, i) => {
    const pattern = new RegExp(`^${rule.column.split('*').map(escape).join('.*')}$`, 'i');
    let action: ColumnAction;
    if (rule.action === 'never') action = NEVER;
    else if (rule.action === 'null') action = NULL;
    else {
      const strategy = rule.strategy ?? 'full';
      if (strategy === 'hash' && plan.hashKey === undefined) {
        throw new MaskingConfigError(`columns[${i}].strategy`, 'hash needs the masking salt');
      }
      const key = plan.hashKey;
      const apply =
        strategy === 'partial'
          ? (value: string) => partialMask(value, 'custom:column')
          : strategy === 'hash'
            ? (value: string) => hashMask(value, 'custom:column', key!)
            : () => FULL_MASK;
      action = Object.freeze({ action: 'mask', apply });
    }
    return { pattern, connection: rule.connection, action };
  });
  return (connection, column) => compiled.find((r) => (r.connection === undefined || r.connection === connection) && r.pattern.test(column))?.action;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
