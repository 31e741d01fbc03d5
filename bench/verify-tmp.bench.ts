import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/index.ts';
import { StatementDetails } from '../src/store/audit-batches.ts';
import { verifyAuditLog } from '../src/audit/verify.ts';
const N = Number(process.env.N ?? 300_000);
const dir = await mkdtemp(join(tmpdir(), 'verify-bench-'));
const store = await openStore(`sqlite:${join(dir, 's.db')}`);
for (let i = 0; i < N; i += 5000) {
  await store.appendAudits(Array.from({ length: 5000 }, (_, k) => ({ at: Date.now(), actor: 'bench', action: 'command.allowed', subject: 'ses_0123456789abcdef', outcome: 'success' as const, details: new StatementDetails('bench', i + k, `SELECT abalance FROM pgbench_accounts WHERE aid = ${i + k};`) })), { records: false });
}
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  const v = await verifyAuditLog(store, new Map());
  const s = (performance.now() - t0) / 1000;
  console.log(`verify ${v.records} records ok=${v.ok} in ${s.toFixed(2)} s: ${Math.round(v.records / s)} records/s`);
}
await store.close();
await rm(dir, { recursive: true, force: true });
