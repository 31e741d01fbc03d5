/**
 * `drawbridge audit verify` proves that no record of the audit log was edited, removed, reordered
 * or cut off the end since it was written (exit status 1 naming the first record that breaks);
 * `drawbridge audit export` writes the log as JSON lines for a SIEM, with each record's hashes so
 * that the chain can be checked outside the gateway. Both act on the gateway's store directly.
 * On a terminal, an export longer than the screen goes through the pager (cli/pager.ts,
 * `--no-pager`); piped or written to a file, it is written as it is.
 */

import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';
import { trustedKeys } from '../audit/checkpoints.ts';
import { exportLine } from '../audit/sinks.ts';
import { auditRecords, verifyAuditLog, type AuditVerification } from '../audit/verify.ts';
import { pointInTime } from '../core/duration.ts';
import { options, UsageError, withLocalStore } from './args.ts';
import { pagedOutput, type Output } from './pager.ts';

/** `verify` splits a long log into at most this many parts by default, one a core. */
const MAX_VERIFY_THREADS = 8;

export async function runAudit(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'verify':
      return verify(rest);
    case 'export':
      return exportLog(rest);
    default:
      throw new UsageError(verb ? `unknown audit verb "${verb}"` : 'audit needs a verb: verify or export');
  }
}

async function verify(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    'public-key': { type: 'string', multiple: true },
    threads: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('audit verify needs --config FILE');
  const threads = values.threads === undefined ? Math.min(availableParallelism(), MAX_VERIFY_THREADS) : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new UsageError('--threads must be 1 to 64');
  const report = await withLocalStore(values.config, async (store, config) => {
    // Trusted keys come from outside the store: the gateway's key file, and any named here.
    const files = [...(values['public-key'] ?? [])];
    const pems = files.map((file) => readKey(file));
    try {
      pems.push(readFileSync(config.audit.signingKeyFile, 'utf8'));
    } catch {
      if (pems.length === 0) {
        throw new UsageError(
          `no key to check the checkpoints with: ${config.audit.signingKeyFile} is not readable; give --public-key FILE`,
        );
      }
    }
    return verifyAuditLog(store, trustedKeys(pems), { threads, url: config.store });
  });
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : describe(report));
  return report.ok ? 0 : 1;
}

function readKey(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the public key ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

const count = new Intl.NumberFormat('en-US');

function describe(r: AuditVerification): string {
  const checkpoints =
    r.lastCheckpoint === undefined
      ? 'no checkpoint yet'
      : `${count.format(r.checkpoints)} signed checkpoint${r.checkpoints === 1 ? '' : 's'}, the last at record ${r.lastCheckpoint.seq} (${new Date(r.lastCheckpoint.at).toISOString()})`;
  if (r.ok) {
    return `audit log verified: ${count.format(r.records)} records, head ${r.head.seq} (${r.head.hash.slice(0, 16)}…), ${checkpoints}\n`;
  }
  const before = r.problem!.kind === 'chain' ? Math.max(0, r.problem!.seq - 1) : r.head.seq;
  return `audit log BROKEN at record ${r.problem!.seq}: ${r.problem!.message}\n  records 1 to ${before} verified; ${checkpoints}\n`;
}

async function exportLog(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    format: { type: 'string' },
    output: { type: 'string' },
    'no-pager': { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('audit export needs --config FILE');
  if ((values.format ?? 'jsonl') !== 'jsonl') throw new UsageError(`--format must be jsonl (got "${values.format}")`);
  const since = values.since === undefined ? undefined : pointInTime(values.since, Date.now());
  const until = values.until === undefined ? undefined : pointInTime(values.until, Date.now());
  const paged: Output | undefined = values.output ? undefined : pagedOutput({ off: values['no-pager'] });
  const out: Writable = paged ?? createWriteStream(values.output!, { mode: 0o600 });
  let written = 0;
  await withLocalStore(values.config, async (store) => {
    for await (const r of auditRecords(store, { since, until })) {
      // The reader quit the pager: reading on would be for no one.
      if (paged?.quit) break;
      if (!out.write(`${exportLine(r)}\n`)) await once(out, 'drain');
      written++;
    }
  });
  if (paged) await paged.close();
  if (values.output) {
    out.end();
    await once(out, 'finish');
    process.stderr.write(`${count.format(written)} records written to ${values.output}\n`);
  }
  return 0;
}
