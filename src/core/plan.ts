/**
 * A plan: what an agent says it will do with a grant before it gets one. A human approves the
 * plan once; the grant then allows what the plan covers and nothing else (policy/plan.ts
 * decides what a statement's plan coverage is; the guard, what follows from it).
 */

export interface PlanStep {
  /**
   * What the step does, as policy action names without their `sql:` prefix: a statement kind
   * (`select`, `update`, `copy-to`, `ddl`, ...) or a group of them (`read`, `write`).
   */
  readonly actions: readonly string[];
  /** The tables it reads or writes (`orders`, `billing.refunds`); unqualified means `public`. */
  readonly tables: readonly string[];
  /**
   * The statement it runs, with placeholders or literals where values go (`UPDATE refunds SET
   * status = $1 WHERE id = $2`): when set, only statements of this shape are covered.
   */
  readonly template?: string | undefined;
}

export interface Plan {
  /** The access request it came with. */
  readonly id: string;
  readonly steps: readonly PlanStep[];
}
