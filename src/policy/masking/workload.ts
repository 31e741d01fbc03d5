/**
 * A deterministic masking workload, for benchmarks (the tests assert no timings).
 *
 * What it is for: `bench/` times `runMaskingWorkload` on `maskingWorkload(n)` and prints
 * values per second, for values with nothing to find (most of a result set: ids, amounts,
 * timestamps, names, UUIDs, status words, short JSON) and for values that hold something to mask.
 *
 * What it guarantees: the same `count` gives the same values on every run and machine (a fixed
 * linear congruential generator, no Math.random), so figures are comparable between commits.
 *
 * Known limits: the mix is an invented but plausible one; a real table's values may cost more
 * (long text columns) or less (mostly integers).
 */
import { DEFAULT_MASKING, maskText, type MaskingPlan } from './strategies.ts';

export interface MaskingWorkload {
  /** Values in which the default plan finds nothing. */
  readonly clean: readonly string[];
  /** Values in which the default plan finds at least one thing to mask. */
  readonly sensitive: readonly string[];
}

export interface WorkloadRun {
  readonly values: number;
  readonly changed: number;
  readonly findings: number;
}

/**
 * Values in which the default plan finds nothing, each a near miss of some detector: ids, amounts,
 * timestamps, dates, UUIDs, versions, ISBNs, hashes, prose. The tests hold the detectors to it.
 */
export const NOTHING_TO_FIND: readonly string[] = [
  '',
  'a',
  'ok',
  'hello world',
  'Ada Lovelace',
  'pending',
  '42',
  '1234567',
  '2133734253',
  '1234.56',
  '-1234.56',
  '1,234,567.89',
  '1e-7',
  '2024-01-15',
  '2024-01-15 10:22:33.123456+00',
  '2024-01-15T10:22:33Z',
  '10:22:33',
  '1700000000',
  '1700000000123',
  '550e8400-e29b-41d4-a716-446655440000',
  'v1.2.3',
  '10.15.7',
  'ISBN 978-3-16-148410-0',
  '978-0-306-40615-7',
  '4111111111111112',
  '123456789',
  '000-12-3456',
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'd41d8cd98f00b204e9800998ecf8427e',
  'aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZGF0YQ==',
  '{"sku":"A-17","qty":3,"price":12.5}',
  'ORD-1000042',
  'SELECT * FROM orders WHERE id = 42',
  'The quick brown fox jumps over the lazy dog.',
  '@channel please review',
  'std::vector<int>',
  'C:\\Users\\ann\\file.txt',
  'https://example.com/path?q=1&page=2',
  '#ff00aa',
  '(+)',
  'user@localhost',
];

const CLEAN: readonly ((n: number) => string)[] = [
  (n) => NOTHING_TO_FIND[n % NOTHING_TO_FIND.length]!,
  (n) => String(n),
  (n) => `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}`,
  (n) => new Date(1_700_000_000_000 + n * 1000).toISOString(),
  (n) => `2024-${String((n % 12) + 1).padStart(2, '0')}-${String((n % 28) + 1).padStart(2, '0')}`,
  (n) => ['pending', 'shipped', 'delivered', 'cancelled', 'refunded'][n % 5]!,
  (n) => ['Ada Lovelace', 'Alan Turing', 'Grace Hopper', 'Edsger Dijkstra'][n % 4]!,
  (n) => {
    const h = (Math.imul(n + 1, 2_654_435_761) >>> 0).toString(16).padStart(8, '0');
    return `${h}-${h.slice(0, 4)}-4${h.slice(1, 4)}-a${h.slice(4, 7)}-${h}${h.slice(2, 6)}`;
  },
  (n) => `ORD-${1_000_000 + n}`,
  (n) => `{"sku":"A-${n % 997}","qty":${n % 9},"price":${(n % 5000) / 100}}`,
  (n) => `Customer asked for a refund of order ${100_000 + n} on v2.${n % 20}.${n % 7}.`,
  () => 't',
  () => '',
];

const SENSITIVE: readonly ((n: number) => string)[] = [
  (n) => `user${n}@example.com`,
  () => '4111 1111 1111 1111',
  (n) => `ssn ${String(100 + (n % 500)).padStart(3, '0')}-${String(10 + (n % 80))}-${String(1000 + (n % 8999))}`,
  (n) => `call (213) 373-${String(4000 + (n % 1000))}`,
  () => 'DE89 3704 0044 0532 0130 00',
  (n) => `client 10.${n % 256}.${(n >> 8) % 256}.7 connected`,
  () => 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
  () => 'key=AKIAIOSFODNN7EXAMPLE',
  (n) => `{"email":"a${n}@shop.example.org","note":"card 5555-5555-5555-4444"}`,
];

function pick<T>(list: readonly T[], state: { seed: number }): T {
  state.seed = (Math.imul(state.seed, 1_103_515_245) + 12_345) >>> 0;
  return list[state.seed % list.length]!;
}

/** `count` clean values and `count` sensitive ones, the same on every run. */
export function maskingWorkload(count: number): MaskingWorkload {
  const state = { seed: 42 };
  const clean: string[] = [];
  const sensitive: string[] = [];
  for (let i = 0; i < count; i++) {
    clean.push(pick(CLEAN, state)(i));
    sensitive.push(pick(SENSITIVE, state)(i));
  }
  return { clean, sensitive };
}

/** Masks every value once; what came out, for a benchmark to print next to its timing. */
export function runMaskingWorkload(values: readonly string[], plan: MaskingPlan = DEFAULT_MASKING): WorkloadRun {
  let changed = 0;
  let findings = 0;
  for (const v of values) {
    const r = maskText(v, plan);
    if (r.changed) changed++;
    findings += r.findings.length;
  }
  return { values: values.length, changed, findings };
}
