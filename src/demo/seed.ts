/**
 * Deterministic sample data for the demo PostgreSQL target: fictional customers with
 * personal data (names, emails, phones, SSNs) and payments with card numbers, so that
 * masking, inspection and recording have something realistic to act on.
 *
 * Guarantees: the same options give byte-identical SQL (seeded PRNG, fixed base date);
 * nothing identifies a real person or a real account:
 * - emails use the reserved example.com / example.org / example.net domains;
 * - phone numbers use the fictional 555-0100..555-0199 block;
 * - SSNs are well-formed (area 001-899 except 666, group 01-99, serial 0001-9999) so that
 *   detectors accept them, but they are random;
 * - card numbers pass the Luhn check and start with real IIN ranges (Visa 4, Mastercard
 *   51-55 and 2221-2720, Amex 34/37) so that detectors accept them, but they are random.
 */

export interface SeedOptions {
  /** Number of customers; default 200. */
  customers?: number;
  /** Number of payments; default 1000. */
  payments?: number;
  /** PRNG seed; default 20240601. */
  seed?: number;
}

const FIRST_NAMES = [
  'Maria',
  'James',
  'Aisha',
  'Wei',
  'Olivia',
  'Mateo',
  'Priya',
  'Liam',
  'Sofia',
  'Noah',
  'Fatima',
  'Lucas',
  'Hannah',
  'Kenji',
  'Amara',
  'Ethan',
  'Chloe',
  'Diego',
  'Ingrid',
  'Omar',
  'Elena',
  'Samuel',
  'Yuki',
  'Grace',
  'Tomás',
  'Zoe',
  'Arjun',
  'Leila',
  'Daniel',
  'Nadia',
  'Henry',
  'Camila',
  'Isaac',
  'Mei',
  'Oliver',
  'Ana',
  'Kwame',
  'Emma',
  'Rafael',
  'Sara',
];
const LAST_NAMES = [
  'Gonzalez',
  'Smith',
  'Okafor',
  'Chen',
  'Johnson',
  'Rossi',
  'Patel',
  "O'Brien",
  'Müller',
  'Kim',
  'Nguyen',
  'Garcia',
  'Williams',
  'Tanaka',
  'Mensah',
  'Brown',
  'Dubois',
  'Hernandez',
  'Larsen',
  'Haddad',
  'Petrova',
  'Davis',
  'Sato',
  'Martin',
  'Silva',
  'Cohen',
  'Singh',
  'Rahimi',
  'Wilson',
  'Kowalski',
  'Clark',
  'Lopez',
  'Andersson',
  'Wang',
  'Taylor',
  'Costa',
  'Boateng',
  'Moore',
  'Fernandes',
  'Novak',
];
const CITIES: Array<{ city: string; areaCode: string }> = [
  { city: 'San Francisco', areaCode: '415' },
  { city: 'New York', areaCode: '212' },
  { city: 'Chicago', areaCode: '312' },
  { city: 'Austin', areaCode: '512' },
  { city: 'Seattle', areaCode: '206' },
  { city: 'Boston', areaCode: '617' },
  { city: 'Denver', areaCode: '303' },
  { city: 'Miami', areaCode: '305' },
  { city: 'Portland', areaCode: '503' },
  { city: 'Atlanta', areaCode: '404' },
];
const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net'];
const CURRENCIES = ['USD', 'USD', 'USD', 'USD', 'EUR', 'EUR', 'GBP'];
const BASE_TIME = Date.UTC(2024, 0, 1);
const DAY_MS = 24 * 60 * 60 * 1000;

/** mulberry32: small, fast, good enough for sample data, and stable across platforms. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Random {
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

function random(seed: number): Random {
  const next = prng(seed);
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    int,
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)] as T,
    chance: (p: number) => next() < p,
  };
}

function digits(rng: Random, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(rng.int(0, 9));
  return out;
}

/** The digit that makes `partial` + digit pass the Luhn check. */
export function luhnCheckDigit(partial: string): number {
  let sum = 0;
  // Walking from the right, the check digit will sit at position 0, so the last digit of
  // `partial` is at an odd position and gets doubled.
  for (let i = 0; i < partial.length; i++) {
    let d = Number(partial[partial.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

export function luhnValid(number: string): boolean {
  const plain = number.replace(/[\s-]/g, '');
  if (!/^\d{12,19}$/.test(plain)) return false;
  return luhnCheckDigit(plain.slice(0, -1)) === Number(plain.slice(-1));
}

function cardNumber(rng: Random): string {
  const brand = rng.int(0, 9);
  let prefix: string;
  let length: number;
  if (brand < 5) {
    prefix = '4';
    length = 16;
  } else if (brand < 8) {
    prefix = rng.chance(0.7) ? String(rng.int(51, 55)) : String(rng.int(2221, 2720));
    length = 16;
  } else {
    prefix = rng.pick(['34', '37']);
    length = 15;
  }
  const partial = prefix + digits(rng, length - prefix.length - 1);
  const plain = partial + String(luhnCheckDigit(partial));
  if (!rng.chance(0.5)) return plain;
  return length === 15 ? `${plain.slice(0, 4)} ${plain.slice(4, 10)} ${plain.slice(10)}` : (plain.match(/\d{4}/g) ?? []).join(' ');
}

function ssn(rng: Random): string {
  let area = rng.int(1, 898);
  if (area >= 666) area += 1; // skip 666; 900-999 are never issued
  const group = rng.int(1, 99);
  const serial = rng.int(1, 9999);
  return `${String(area).padStart(3, '0')}-${String(group).padStart(2, '0')}-${String(serial).padStart(4, '0')}`;
}

function phone(rng: Random, areaCode: string): string {
  const line = `01${String(rng.int(0, 99)).padStart(2, '0')}`;
  switch (rng.int(0, 2)) {
    case 0:
      return `+1 ${areaCode} 555 ${line}`;
    case 1:
      return `(${areaCode}) 555-${line}`;
    default:
      return `+1${areaCode}555${line}`;
  }
}

function emailLocalPart(first: string, last: string): string {
  const ascii = (s: string) =>
    s
      .normalize('NFD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/[^A-Za-z]/g, '')
      .toLowerCase();
  return `${ascii(first)}.${ascii(last)}`;
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function timestamp(ms: number): string {
  return quote(new Date(ms).toISOString());
}

/** The SQL that creates and fills `customers` and `payments`. Run it on an empty database. */
export function seedSql(options: SeedOptions = {}): string {
  const customerCount = options.customers ?? 200;
  const paymentCount = options.payments ?? 1000;
  const rng = random(options.seed ?? 20240601);

  const statements: string[] = [
    `CREATE TABLE customers (
  id serial PRIMARY KEY,
  full_name text NOT NULL,
  email text NOT NULL UNIQUE,
  phone text,
  ssn text,
  city text,
  created_at timestamptz NOT NULL
);`,
    `COMMENT ON TABLE customers IS 'Demo data: fictional customers with personal data (email, phone, SSN). Generated by Drawbridge; no real person.';`,
    `CREATE TABLE payments (
  id serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id),
  amount numeric(10,2) NOT NULL,
  currency text NOT NULL,
  card_number text NOT NULL,
  status text NOT NULL CHECK (status IN ('paid', 'refunded', 'failed')),
  created_at timestamptz NOT NULL
);`,
    `COMMENT ON TABLE payments IS 'Demo data: fictional card payments; card numbers pass the Luhn check but belong to no account.';`,
    `CREATE INDEX payments_customer_id_idx ON payments (customer_id);`,
  ];

  const customerCreated: number[] = [];
  const emails = new Set<string>();
  const customerRows: string[] = [];
  for (let i = 0; i < customerCount; i++) {
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const place = rng.pick(CITIES);
    const domain = rng.pick(EMAIL_DOMAINS);
    const local = emailLocalPart(first, last);
    let email = `${local}@${domain}`;
    for (let n = 2; emails.has(email); n++) email = `${local}${n}@${domain}`;
    emails.add(email);
    const created = BASE_TIME + rng.int(0, (365 * DAY_MS) / 1000) * 1000;
    customerCreated.push(created);
    customerRows.push(
      `(${[quote(`${first} ${last}`), quote(email), quote(phone(rng, place.areaCode)), quote(ssn(rng)), quote(place.city), timestamp(created)].join(', ')})`,
    );
  }
  for (let i = 0; i < customerRows.length; i += 500) {
    statements.push(
      `INSERT INTO customers (full_name, email, phone, ssn, city, created_at) VALUES\n${customerRows.slice(i, i + 500).join(',\n')};`,
    );
  }

  const paymentRows: string[] = [];
  for (let i = 0; i < paymentCount && customerCount > 0; i++) {
    const customer = rng.int(1, customerCount);
    const created = (customerCreated[customer - 1] ?? BASE_TIME) + rng.int(0, (180 * DAY_MS) / 1000) * 1000;
    const cents = rng.chance(0.8) ? rng.int(100, 20_000) : rng.int(20_000, 200_000);
    const roll = rng.int(0, 99);
    const status = roll < 82 ? 'paid' : roll < 91 ? 'refunded' : 'failed';
    paymentRows.push(
      `(${[String(customer), (cents / 100).toFixed(2), quote(rng.pick(CURRENCIES)), quote(cardNumber(rng)), quote(status), timestamp(created)].join(', ')})`,
    );
  }
  for (let i = 0; i < paymentRows.length; i += 500) {
    statements.push(
      `INSERT INTO payments (customer_id, amount, currency, card_number, status, created_at) VALUES\n${paymentRows.slice(i, i + 500).join(',\n')};`,
    );
  }
  return statements.join('\n\n') + '\n';
}
