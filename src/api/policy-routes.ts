/**
 * The API of guardrails: the policies in force (files, texts, version), checking a policy text
 * against the schema before it is deployed, and what the policies in force decide for a
 * statement, with its classification. The same decision path as the data path and
 * `drawbridge policy test` (decideSql); nothing here changes what is in force: policy files
 * are deployed as files, and every change that goes live is an audit event.
 */

import { z } from 'zod';
import type { Clock } from '../core/index.ts';
import { PolicyEngine, PolicyError } from '../policy/cedar/engine.ts';
import { decideSql } from '../policy/guard.ts';
import type { LivePolicy } from '../policy/live-policy.ts';
import { initClassifier } from '../policy/sql/pg-classifier.ts';
import { ApiError, type AnyRoute } from './server.ts';

export interface PolicyRouteDeps {
  /** undefined: the config turns guardrails off. */
  readonly policy: LivePolicy | undefined;
  readonly connections: readonly { readonly name: string }[];
  readonly clock: Clock;
}

const READERS = ['admin', 'approver', 'auditor'] as const;
const MAX_POLICY_TEXT = 256 * 1024;

const policyView = z.object({
  enabled: z.boolean(),
  version: z.string().nullable(),
  files: z.array(z.object({ file: z.string(), text: z.string() })),
});

const outcome = z.object({
  outcome: z.enum(['allow', 'deny', 'approval']),
  policy: z.string().optional(),
  policies: z.array(z.string()).optional(),
  reason: z.string().optional(),
  approvers: z.string().optional(),
});

const testResult = z.object({
  verdict: z.object({ outcome: z.enum(['allow', 'deny']), policy: z.string().optional(), reason: z.string().optional() }),
  version: z.string(),
  decisions: z.array(z.object({ statement: z.record(z.string(), z.unknown()), outcome })),
  parseError: z.string().nullable(),
});

export function policyRoutes(deps: PolicyRouteDeps): AnyRoute[] {
  const inForce = (): LivePolicy => {
    if (!deps.policy) throw new ApiError(409, 'policy-disabled', 'guardrails are off on this gateway (policy.enabled: false)');
    return deps.policy;
  };
  return [
    {
      method: 'GET',
      path: '/api/policies',
      summary: 'The policies in force: their files and texts (the default pack when the config names none) and their version.',
      access: [...READERS],
      response: policyView,
      handler: () => {
        const policy = deps.policy;
        if (!policy) return { enabled: false, version: null, files: [] };
        const files =
          policy.files.length === 0
            ? [{ file: 'default-pack.cedar', text: PolicyEngine.defaultPackText() }]
            : policy.files.map((file, i) => ({ file, text: policy.texts[i]! }));
        return { enabled: true, version: policy.engine.version, files };
      },
    },
    {
      method: 'POST',
      path: '/api/policies/check',
      summary: 'Validates policy texts against the schema, as the gateway would load them; 422 with file:line:column on the first problem.',
      access: [...READERS],
      body: z.object({
        files: z.array(z.object({ file: z.string().min(1).max(256), text: z.string().max(MAX_POLICY_TEXT) })).min(1).max(64),
      }),
      response: z.object({ valid: z.literal(true), version: z.string() }),
      errors: { 422: ['policy-invalid'] },
      handler: ({ body }: { body: { files: { file: string; text: string }[] } }) => {
        try {
          return { valid: true, version: PolicyEngine.load(body.files).version };
        } catch (error) {
          if (error instanceof PolicyError) throw new ApiError(422, 'policy-invalid', error.message);
          throw error;
        }
      },
    },
    {
      method: 'POST',
      path: '/api/policies/test',
      summary:
        'What the policies in force decide for a statement sent by a principal on a connection: the verdict, the deciding policies and the classification.',
      access: [...READERS],
      body: z.object({
        connection: z.string().min(1).max(63),
        principal: z.string().min(1).max(63),
        kind: z.enum(['user', 'service-account']).default('user'),
        groups: z.array(z.string().min(1).max(256)).max(256).default([]),
        sql: z.string().min(1).max(MAX_POLICY_TEXT),
      }),
      response: testResult,
      errors: { 404: ['unknown-connection'], 409: ['policy-disabled'] },
      handler: async ({
        body,
      }: {
        body: { connection: string; principal: string; kind: 'user' | 'service-account'; groups: string[]; sql: string };
      }) => {
        const policy = inForce();
        if (!deps.connections.some((c) => c.name === body.connection)) {
          throw new ApiError(404, 'unknown-connection', `no connection "${body.connection}" on this gateway`);
        }
        await initClassifier();
        const engine = policy.engine;
        const decision = decideSql(
          engine,
          {
            principal: { name: body.principal, kind: body.kind, groups: body.groups },
            connection: { name: body.connection, type: 'postgres' },
            now: deps.clock.now(),
          },
          body.sql,
        );
        return {
          verdict: decision.verdict,
          version: engine.version,
          decisions: decision.decisions.map((d) => ({ statement: { ...d.statement }, outcome: { ...d.outcome } })),
          parseError: decision.classification.parseError ?? null,
        };
      },
    },
  ];
}
