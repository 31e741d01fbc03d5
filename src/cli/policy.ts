/**
 * `drawbridge policy check FILE…` validates Cedar policy files against the gateway's schema;
 * `drawbridge policy test --connection C --principal P --sql "…"` shows what the policies (the
 * given files, or the default pack) decide for a statement, and how it was classified.
 */

import { readFile } from 'node:fs/promises';
import { PolicyEngine, PolicyError } from '../policy/cedar/engine.ts';
import { decideSql } from '../policy/guard.ts';
import { initClassifier } from '../policy/sql/pg-classifier.ts';
import { options, optionsAndArguments, UsageError } from './args.ts';

export async function runPolicy(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'check':
      return check(rest);
    case 'test':
      return test(rest);
    case 'default-pack':
      process.stdout.write(PolicyEngine.defaultPackText());
      return 0;
    default:
      throw new UsageError(verb ? `unknown policy verb "${verb}"` : 'policy needs a verb: check, test or default-pack');
  }
}

async function load(files: readonly string[]): Promise<PolicyEngine> {
  if (files.length === 0) return PolicyEngine.defaultPack();
  const sources = await Promise.all(files.map(async (file) => ({ file, text: await readFile(file, 'utf8') })));
  return PolicyEngine.load(sources);
}

async function check(args: readonly string[]): Promise<number> {
  const { positionals } = optionsAndArguments(args, {});
  if (positionals.length === 0) throw new UsageError('policy check needs one or more FILE');
  try {
    const engine = await load(positionals);
    process.stdout.write(`${positionals.join(', ')}: valid (version ${engine.version.slice(0, 12)})\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    process.stderr.write(`drawbridge: ${error.message}\n`);
    return 1;
  }
}

async function test(args: readonly string[]): Promise<number> {
  const values = options(args, {
    connection: { type: 'string' },
    principal: { type: 'string' },
    agent: { type: 'boolean' },
    group: { type: 'string', multiple: true },
    sql: { type: 'string' },
    policy: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  });
  if (!values.connection || !values.principal || values.sql === undefined) {
    throw new UsageError('policy test needs --connection NAME --principal NAME --sql "STATEMENT"');
  }
  let engine: PolicyEngine;
  try {
    engine = await load(values.policy ?? []);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    process.stderr.write(`drawbridge: ${error.message}\n`);
    return 1;
  }
  await initClassifier();
  const { verdict, classification, decisions } = decideSql(
    engine,
    {
      principal: { name: values.principal, kind: values.agent ? 'service-account' : 'user', groups: values.group ?? [] },
      connection: { name: values.connection, type: 'postgres' },
      now: Date.now(),
    },
    values.sql,
  );
  const refused = verdict.outcome !== 'allow';
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ verdict, classification, decisions }, null, 2)}\n`);
    return refused ? 1 : 0;
  }
  for (const [index, { statement, outcome: decision }] of decisions.entries()) {
    const label = `${index + 1}. ${statement.kind}${statement.objectType ? ` ${statement.objectType}` : ''}`;
    const outcome =
      decision.outcome === 'allow'
        ? `allow (${decision.policies.join(', ') || 'no policy named'})`
        : decision.outcome === 'deny'
          ? `deny by "${decision.policy}": ${decision.reason} on ${values.connection}`
          : `approval by ${decision.approvers} required by "${decision.policy}": ${decision.reason}`;
    process.stdout.write(`${label}: ${outcome}\n`);
    const facts = [
      statement.tablesRead.length > 0 ? `reads ${statement.tablesRead.join(', ')}` : '',
      statement.tablesWritten.length > 0 ? `writes ${statement.tablesWritten.join(', ')}` : '',
      statement.hasWhere !== undefined ? `real WHERE: ${statement.hasWhere ? 'yes' : 'no'}` : '',
      statement.dangerousFunctions.length > 0 ? `dangerous functions: ${statement.dangerousFunctions.join(', ')}` : '',
      statement.copy ? `copy ${statement.copy.direction} ${statement.copy.target}` : '',
      statement.dynamicSql ? 'dynamic SQL' : '',
    ].filter(Boolean);
    if (facts.length > 0) process.stdout.write(`   ${facts.join('; ')}\n`);
  }
  if (classification.parseError) process.stdout.write(`   does not parse: ${classification.parseError}\n`);
  process.stdout.write(refused ? 'verdict: refused\n' : 'verdict: allowed\n');
  return refused ? 1 : 0;
}
