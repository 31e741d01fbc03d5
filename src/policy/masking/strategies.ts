/**
 * Masking strategies: how a value found by the detectors is rewritten, and `maskText`, which
 * detects and rewrites a whole text value in one call.
 *
 * What it is for: the data path hands every text value that leaves the gateway to `maskText` and
 * sends what comes back (or SQL NULL). Column rules and exemptions, and the protocol-specific
 * rewriting of rows and bodies, are built on top of this elsewhere.
 *
 * What it guarantees:
 * - Pure and synchronous. The configuration is compiled and checked once (`compileMasking`,
 *   which throws `MaskingConfigError` naming the field).
 * - A text with nothing to find comes back as the very same string (`result.text === text`) with
 *   `changed: false`; that path costs the detectors' pre-filters and nothing more.
 * - A masked span never contains the value it replaces: at most the pieces each strategy says it
 *   keeps (below).
 * - Masking a masked text again changes nothing: no strategy's output is found again by the
 *   built-in detectors (with one improbable exception, under Known limits).
 *
 * Strategies, per span:
 * - `partial` keeps what helps debugging and the characters' layout:
 *     email   first character of the local part and the top-level label:
 *             john.doe@example.com -> j*******@*******.com
 *     card    the last four digits, separators kept: 4111 1111 1111 1111 -> **** **** **** 1111
 *     ssn     the last four: 123-45-6789 -> ***-**-6789
 *     phone   the last two digits, '+' and separators kept: +1 415 555 2671 -> +* *** *** **71
 *     iban    the country code and the last four: DE89 3704 0044 0532 0130 00 -> DE** **** **** **** **30 00
 *     ipv4    the first octet: 192.168.1.10 -> 192.*.*.*   (decision: the first octet tells a
 *             private network from a public one, which is what debugging needs; one octet of
 *             four does not identify a host)
 *     ipv6    the first group: 2001:db8::1 -> 2001:****
 *     jwt, private-key, api-key, drawbridge-token: nothing but a prefix that names the kind:
 *             eyJ****, ghp_****, sk-ant-****, AKIA****, dbr_****, dbr_sak_****,
 *             -----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----
 *     custom  letters and digits masked, except the last four when there are 12 or more.
 *   Partial masks keep the value's length (it is a debugging aid, not a secrecy measure).
 * - `full` replaces the span with `****`, whatever its length. Decision: a fixed length, so that
 *   the length does not leak (it tells an Amex from a Visa, a short password from a long one).
 * - `hash` replaces the span with `h:` + the first 16 hex digits of HMAC-SHA-256(salt, value),
 *   the value first normalised per kind (card, SSN, phone: digits only; IBAN: letters and digits,
 *   upper case; email: lower case), so that the same value masks the same way wherever and
 *   however it is written, and joins and GROUP BY on masked values still line up. The salt must
 *   be secret and at least 16 bytes: without it a 9-digit SSN space is searched in seconds.
 * - `null` turns the whole value into SQL NULL: `maskText` returns `text: null`; the caller
 *   sends NULL (in a JSON body: null).
 * Defaults: `partial` for every built-in kind, `full` for custom kinds; `strategies` overrides
 * per kind.
 *
 * Known limits:
 * - A hash is 64 bits of HMAC: no collisions in practice, but it is a pseudonym, not
 *   anonymisation: equal values stay equal, by design.
 * - A `hash` output made of 16 decimal digits that happen to pass the card checks (about one in
 *   10^5 hashes) is found again as a card if masked a second time; it then changes, but never
 *   leaks anything.
 * - Custom detectors may well match masked output (a pattern for `\*+` would); that is theirs.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import {
  byteCandidates,
  type Candidates,
  compileDetection,
  DEFAULT_DETECTION,
  detect,
  detectWhole,
  fieldCandidates,
  KIND_RANK,
  MaskingConfigError,
  type BuiltinKind,
  type DetectionConfig,
  type DetectionPlan,
  type FindingKind,
  type Span,
  worthDetecting,
} from './detectors.ts';

export type MaskStrategy = 'partial' | 'full' | 'hash' | 'null';
export const MASK_STRATEGIES: readonly MaskStrategy[] = Object.freeze(['partial', 'full', 'hash', 'null'] as const);

export type StrategyMap = { readonly [K in FindingKind]?: MaskStrategy };

export interface MaskingConfig extends DetectionConfig {
  /** Per kind, over the defaults (`partial` for built-in kinds, `full` for `custom:<name>`). */
  readonly strategies?: StrategyMap;
  /** The HMAC key of the `hash` strategy; required (16 bytes or more) when any kind uses it. */
  readonly salt?: string | Uint8Array;
}

/** A compiled, frozen masking configuration: made by `compileMasking`, shared freely. */
export interface MaskingPlan {
  readonly detection: DetectionPlan;
  readonly strategies: ReadonlyMap<FindingKind, MaskStrategy>;
  /** The salt as a key object (an HMAC keyed by one is several times cheaper than by bytes). */
  readonly hashKey: KeyObject | undefined;
}

export interface MaskResult {
  /** The masked text; the input itself when nothing was found; null when the value must become SQL NULL. */
  readonly text: string | null;
  readonly changed: boolean;
  /** The kind of every span found, in text order (a kind appears once per finding). */
  readonly findings: readonly FindingKind[];
}

export const FULL_MASK = '****';
export const SALT_MIN_BYTES = 16;

export const DEFAULT_STRATEGIES: Readonly<Record<BuiltinKind, MaskStrategy>> = Object.freeze(
  Object.fromEntries(KIND_RANK.map((k) => [k, 'partial'])) as Record<BuiltinKind, MaskStrategy>,
);

// ---------------------------------------------------------------------------------------------
// Strategies on one value

/** Every character matching `maskable` becomes '*', except the last `keepLast` of them. */
function maskKeepingLast(value: string, maskable: RegExp, keepLast: number): string {
  const chars = [...value];
  let toKeep = keepLast;
  for (let i = chars.length - 1; i >= 0; i--) {
    if (!maskable.test(chars[i]!)) continue;
    if (toKeep > 0) toKeep--;
    else chars[i] = '*';
  }
  return chars.join('');
}

const ALNUM = /^[\p{L}\p{N}]$/u;
const KEY_PREFIX = /^(?:AKIA|ASIA|AIza|gh[pousr]_|github_pat_|xox[a-z]-|xapp-|[a-z]{2}_(?:live|test)_|sk-(?:ant-|proj-|svcacct-|admin-)?)/;
const DRAWBRIDGE_PREFIX = /^dbr_(?:sak_|ses_|ref_)?/;
const PEM_BEGIN_LINE = /^-----BEGIN [^-]+-----/;
const PEM_END_LINE = /-----END [^-]+-----$/;

/** Runs of stars, made once: masks are made for every row. */
const STARS = Array.from({ length: 65 }, (_, n) => '*'.repeat(n));
const stars = (n: number): string => (n <= 0 ? '' : (STARS[n] ?? '*'.repeat(n)));

/**
 * A run of a value that a `partial` mask stars, where the mask keeps the value's layout (email,
 * card, SSN, phone, IBAN): every character of `[from, to)` (a code point becomes one star), or
 * only its ASCII digits, or only its capitals and digits. In ASCII text a character is a byte, so
 * the same runs star the value's bytes where they lie (`starBytes`).
 */
export interface StarRun {
  readonly from: number;
  readonly to: number;
  readonly only: 'all' | 'digits' | 'capitals-and-digits';
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isCapitalOrDigit = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90);

/** Where the characters of `value` end that leave the last `keep` digits after them. */
function beforeLastDigits(value: string, keep: number): number {
  let cut = value.length;
  for (let kept = 0; cut > 0 && kept < keep; cut--) if (isDigit(value.charCodeAt(cut - 1))) kept++;
  return cut;
}

/** The runs of the `partial` mask of a kind that keeps the layout (see the header); undefined for the other kinds. */
export function partialRuns(value: string, kind: FindingKind): StarRun[] | undefined {
  switch (kind) {
    case 'email': {
      // The first character of the local part and the top-level label stay.
      const at = value.lastIndexOf('@');
      const dot = value.lastIndexOf('.');
      const first = Math.min((value.codePointAt(0) ?? 0) > 0xffff ? 2 : 1, at);
      return [
        { from: first, to: at, only: 'all' },
        { from: at + 1, to: dot > at ? dot : value.length - 1, only: 'all' },
      ];
    }
    case 'card':
    case 'ssn':
      return [{ from: 0, to: beforeLastDigits(value, 4), only: 'digits' }];
    case 'phone':
      return [{ from: 0, to: beforeLastDigits(value, 2), only: 'digits' }];
    case 'iban': {
      // The country code and the last four stay (an IBAN is capitals, digits and spaces).
      let from = 0;
      for (let seen = 0; from < value.length && seen < 2; from++) if (isCapitalOrDigit(value.charCodeAt(from))) seen++;
      let to = value.length;
      for (let seen = 0; to > from && seen < 4; to--) if (isCapitalOrDigit(value.charCodeAt(to - 1))) seen++;
      return [{ from, to, only: 'capitals-and-digits' }];
    }
    default:
      return undefined;
  }
}

const ASCII_DIGITS = /[0-9]/g;
const CAPITALS_AND_DIGITS = /[A-Z0-9]/g;

/** `value` with `runs` (in order) starred. */
function starred(value: string, runs: readonly StarRun[]): string {
  let out = '';
  let last = 0;
  for (const { from, to, only } of runs) {
    if (to <= from) continue;
    const run = value.slice(from, to);
    out +=
      value.slice(last, from) +
      (only === 'all'
        ? stars(codePointsIn(value, from, to))
        : only === 'digits'
          ? run.replace(ASCII_DIGITS, '*')
          : run.replace(CAPITALS_AND_DIGITS, '*'));
    last = to;
  }
  return out + value.slice(last);
}

const STAR = 0x2a;

/** Stars `runs` of the ASCII text at `bytes[at, …)` where it lies (a character is a byte). */
function starBytes(bytes: Uint8Array, at: number, runs: readonly StarRun[]): void {
  for (const { from, to, only } of runs) {
    if (only === 'all') bytes.fill(STAR, at + from, at + Math.max(from, to));
    else {
      const test = only === 'digits' ? isDigit : isCapitalOrDigit;
      for (let i = at + from; i < at + to; i++) if (test(bytes[i]!)) bytes[i] = STAR;
    }
  }
}

/** Code points in `text[from, to)`: its UTF-16 units less the trailing halves of surrogate pairs. */
function codePointsIn(text: string, from: number, to: number): number {
  let n = to - from;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > from) n--;
  }
  return n;
}

function partialCustom(value: string): string {
  const alnum = [...value].filter((ch) => ALNUM.test(ch)).length;
  return maskKeepingLast(value, ALNUM, alnum >= 12 ? 4 : 0);
}

/** The `partial` strategy (see the header for what each kind keeps). */
export function partialMask(value: string, kind: FindingKind): string {
  const runs = partialRuns(value, kind);
  if (runs !== undefined) return starred(value, runs);
  switch (kind) {
    case 'ipv4':
      return `${value.slice(0, value.indexOf('.'))}.*.*.*`;
    case 'ipv6': {
      const first = value.slice(0, value.indexOf(':'));
      return first === '' ? FULL_MASK : `${first}:${FULL_MASK}`;
    }
    case 'jwt':
      return `eyJ${FULL_MASK}`;
    case 'private-key':
      return `${PEM_BEGIN_LINE.exec(value)?.[0] ?? ''}${FULL_MASK}${PEM_END_LINE.exec(value)?.[0] ?? ''}`;
    case 'api-key':
      return `${KEY_PREFIX.exec(value)?.[0] ?? ''}${FULL_MASK}`;
    case 'drawbridge-token':
      return `${DRAWBRIDGE_PREFIX.exec(value)?.[0] ?? ''}${FULL_MASK}`;
    default:
      return partialCustom(value);
  }
}

/** The value as the `hash` strategy sees it, so that one value hashes the same however written. */
function normalized(value: string, kind: FindingKind): string {
  switch (kind) {
    case 'card':
    case 'ssn':
    case 'phone':
      return value.replace(/\D/g, '');
    case 'iban':
      return value.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
    case 'email':
      return value.toLowerCase();
    default:
      return value;
  }
}

/** The `hash` strategy: `h:` + 16 hex digits of HMAC-SHA-256(salt, normalised value). */
export function hashMask(value: string, kind: FindingKind, salt: KeyObject | Uint8Array): string {
  return `h:${createHmac('sha256', salt).update(normalized(value, kind)).digest('hex').slice(0, 16)}`;
}

// ---------------------------------------------------------------------------------------------
// The plan and `maskText`

/** Compiles a masking configuration once; throws MaskingConfigError naming the field. */
export function compileMasking(config: MaskingConfig = {}): MaskingPlan {
  const detection =
    config.kinds === undefined && config.defaultCountry === undefined && config.custom === undefined
      ? DEFAULT_DETECTION
      : compileDetection(config);
  const strategies = new Map<FindingKind, MaskStrategy>(Object.entries(DEFAULT_STRATEGIES) as [BuiltinKind, MaskStrategy][]);
  for (const c of detection.custom) strategies.set(c.kind, 'full');
  for (const [kind, strategy] of Object.entries(config.strategies ?? {})) {
    if (strategy === undefined) continue;
    if (!strategies.has(kind as FindingKind)) {
      throw new MaskingConfigError(`strategies.${kind}`, 'names no detector (a built-in kind, or custom:<name> of a custom detector)');
    }
    if (!MASK_STRATEGIES.includes(strategy)) {
      throw new MaskingConfigError(`strategies.${kind}`, `must be one of ${MASK_STRATEGIES.join(', ')}`);
    }
    strategies.set(kind as FindingKind, strategy);
  }
  const salt = typeof config.salt === 'string' ? new TextEncoder().encode(config.salt) : config.salt;
  if ([...strategies.values()].includes('hash') && (salt === undefined || salt.byteLength < SALT_MIN_BYTES)) {
    throw new MaskingConfigError('salt', `the hash strategy needs a secret salt of at least ${SALT_MIN_BYTES} bytes`);
  }
  return Object.freeze({ detection, strategies, hashKey: salt === undefined ? undefined : createSecretKey(salt) });
}

/** `partial` everywhere, every built-in detector, phones read as US numbers. */
export const DEFAULT_MASKING: MaskingPlan = compileMasking();

const NO_FINDINGS: readonly FindingKind[] = Object.freeze([]);

/**
 * Detects and masks every sensitive value in `text` with the plan's strategy for its kind.
 * `candidates`: the text's, when the caller has them already (see `maskBytes`).
 */
export function maskText(text: string, plan: MaskingPlan = DEFAULT_MASKING, candidates?: Candidates): MaskResult {
  return maskSpans(text, detect(text, plan.detection, candidates), plan);
}

/** `text` with each span masked with the plan's strategy for its kind. */
function maskSpans(text: string, spans: readonly Span[], plan: MaskingPlan): MaskResult {
  if (spans.length === 0) return { text, changed: false, findings: NO_FINDINGS };
  const findings = spans.map((s) => s.kind);
  let out = '';
  let last = 0;
  for (const s of spans) {
    const strategy = plan.strategies.get(s.kind) ?? 'full';
    if (strategy === 'null') return { text: null, changed: true, findings };
    const value = text.slice(s.start, s.end);
    // compileMasking refuses a hash strategy without a salt, so the key is there when it is used.
    const masked =
      strategy === 'partial' ? partialMask(value, s.kind) : strategy === 'hash' ? hashMask(value, s.kind, plan.hashKey!) : FULL_MASK;
    out += text.slice(last, s.start) + masked;
    last = s.end;
  }
  out += text.slice(last);
  return { text: out, changed: out !== text, findings };
}

/** What `maskBytes` did when it masked the value where it lies: its bytes now carry the masks. */
export interface WrittenOver {
  readonly written: true;
  readonly findings: readonly FindingKind[];
}

/**
 * `maskText` for the UTF-8 text at `bytes[start, end)` (a value inside a message):
 * - undefined when no detector of the plan can find anything there, which is decided on the
 *   bytes without decoding them: what most values of a result cost, one pass over their bytes;
 *   also when the detectors find nothing;
 * - WrittenOver when the text is ASCII and every finding's mask keeps its layout (the `partial`
 *   masks of emails, cards, SSNs, phones and IBANs): the masks are written over the bytes, and no
 *   masked text is made. A value that is one email address or one card number and nothing else
 *   (`detectWhole`) is not even decoded: a second pass over its bytes finds and masks it;
 * - else what `maskText` gives.
 * `candidates`: the bytes' (`byteCandidates`), when the caller has them already (`maskableFields`).
 */
export function maskBytes(
  bytes: Buffer,
  start: number,
  end: number,
  plan: MaskingPlan = DEFAULT_MASKING,
  candidates: Candidates = byteCandidates(bytes, start, end),
): MaskResult | WrittenOver | undefined {
  if (!worthDetecting(candidates, plan.detection)) return undefined;
  // A whole value that is one email or one card (most sensitive columns): told and masked on its bytes.
  const whole = detectWhole(bytes, start, end, plan.detection, candidates);
  if (whole === null) return undefined;
  if (whole !== undefined && plan.strategies.get(whole) === 'partial') {
    if (whole === 'email') starWholeEmail(bytes, start, end);
    else for (let i = start, to = end - 4; i < to; i++) bytes[i] = STAR; // a card of ASCII digits: all but the last four
    return WRITTEN[whole];
  }
  const text = bytes.toString('utf8', start, end);
  const spans = detect(text, plan.detection, candidates);
  // As many characters as bytes: ASCII, so that a character's offset is its byte's.
  const runs = text.length === end - start ? layoutRuns(text, spans, plan) : undefined;
  if (runs === undefined) return maskSpans(text, spans, plan);
  for (const [i, s] of spans.entries()) starBytes(bytes, start + s.start, runs[i]!);
  return { written: true, findings: spans.map((s) => s.kind) };
}

const WRITTEN: Readonly<Record<'email' | 'card', WrittenOver>> = Object.freeze({
  email: Object.freeze({ written: true, findings: Object.freeze(['email'] as const) }),
  card: Object.freeze({ written: true, findings: Object.freeze(['card'] as const) }),
});

/**
 * The `partial` mask of an ASCII email address that is all of `bytes[start, end)` (`detectWhole`
 * said so), written over it: `partialRuns` for 'email' on its bytes, every run all stars.
 */
function starWholeEmail(bytes: Buffer, start: number, end: number): void {
  let at = start + 1;
  while (bytes[at] !== 0x40) at++;
  let dot = end - 1;
  while (bytes[dot] !== 0x2e) dot--;
  for (let i = start + 1; i < at; i++) bytes[i] = STAR;
  for (let i = at + 1; i < dot; i++) bytes[i] = STAR;
}

/**
 * The fields of a line of COPY text or csv at `bytes[start, end)` (split at tabs, commas and the
 * line end, which no mask contains) in which the plan may find something, with their candidates
 * (`fieldCandidates`, one pass over the line): three numbers apiece in `out` (start, end,
 * candidates, for `maskBytes`); returns how many. A line with nothing to find anywhere costs
 * that one pass.
 */
export function maskableFields(bytes: Buffer, start: number, end: number, out: number[], plan: MaskingPlan = DEFAULT_MASKING): number {
  const fields = fieldCandidates(bytes, start, end, out);
  let kept = 0;
  for (let i = 0; i < fields; i++) {
    const candidates = out[3 * i + 2]!;
    if (out[3 * i + 1]! <= out[3 * i]! || !worthDetecting(candidates, plan.detection)) continue;
    out[3 * kept] = out[3 * i]!;
    out[3 * kept + 1] = out[3 * i + 1]!;
    out[3 * kept + 2] = candidates;
    kept++;
  }
  return kept;
}

/** The star runs of every span when all of them are masked `partial` with the layout kept; else undefined. */
function layoutRuns(text: string, spans: readonly Span[], plan: MaskingPlan): StarRun[][] | undefined {
  if (spans.length === 0) return undefined;
  const runs: StarRun[][] = [];
  for (const s of spans) {
    const r = plan.strategies.get(s.kind) === 'partial' ? partialRuns(text.slice(s.start, s.end), s.kind) : undefined;
    if (r === undefined) return undefined;
    runs.push(r);
  }
  return runs;
}
