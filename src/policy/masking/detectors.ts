/**
 * Content detectors for inline masking: where, inside an arbitrary text value, the sensitive
 * values are (emails, payment cards, US SSNs, phone numbers, IBANs, IP addresses, JWTs, private
 * keys, API keys and the gateway's own credentials, plus detectors from the configuration).
 *
 * What it is for: the masking step looks at every value that leaves the gateway (a row's column,
 * an error message, a JSON body), whatever the column is called. `detect()` says which character
 * ranges to mask and what they are; `strategies.ts` decides how they are masked.
 *
 * What it guarantees:
 * - Pure and synchronous: no I/O, no `await`, no state between calls. A plan is compiled once
 *   (`compileDetection`, which throws `MaskingConfigError` on a bad configuration) and then
 *   shared freely.
 * - Spans are UTF-16 offsets into the string (`text.slice(start, end)` is the value), sorted by
 *   `start`, never empty and never overlapping: where two detectors claim overlapping ranges the
 *   longer range wins, and on equal length the more specific kind (the order of `KIND_RANK`).
 * - Low false positives: every detector checks more than a shape — Luhn and the card networks'
 *   IIN ranges for cards, the invalid ranges for SSNs, libphonenumber's validity (full metadata)
 *   for phones, the ISO 13616 checksum and the country's BBAN format (ibantools) for IBANs,
 *   `node:net` for IP addresses, a JSON header with "alg" for JWTs, and fixed prefixes and
 *   lengths for keys. Every detector requires a boundary on both sides (a value glued to letters
 *   or digits is part of something else and is not taken), but the private-key block, which is
 *   delimited by its own lines.
 * - Bounded work on hostile text: the built-in patterns are linear (bounded repetitions, a
 *   boundary look-behind at each start), overlap resolution is linear in the text covered, and
 *   libphonenumber reads at most PHONE_LIBRARY_BUDGET runs of one text (fail closed past it).
 * - Cheap when there is nothing to find: one pass over the characters (or over the UTF-8 bytes,
 *   without decoding them: `byteCandidates`) counts digits, dots, colons and capitals and notes
 *   the other characters the detectors need; a detector runs only when its pre-filter (below)
 *   passes. A short word runs no built-in detector at all, and a value whose bytes pass no
 *   pre-filter is not even decoded.
 *
 * Pre-filters (built-in detectors; custom detectors always run, their pattern is their filter):
 *   email              an '@'
 *   card               13 or more ASCII digits
 *   ssn                9 or more ASCII digits, and a '-' or a space
 *   phone              7 or more ASCII digits, and a '+' or a separator (space, tab, ( ) . - /, or
 *                      any character outside ASCII); then a run of digits and separators reaches
 *                      libphonenumber only if it has 7 digits, is written as a phone (below), is
 *                      not glued to a word or a hyphenated token, is not an amount (12345.67) or a
 *                      dotted quad, and lies outside what the other detectors found; a leading date
 *                      ("2024-01-15 415-555-2671") is cut off first. Phone detection runs last.
 *   iban               2 digits, 2 capitals, 15 or more characters
 *   ipv4               3 dots and 4 digits
 *   ipv6               2 colons and a digit
 *   jwt                2 dots and the text "eyJ" (base64 of '{"')
 *   private-key        the text "-----BEGIN "
 *   api-key, drawbridge-token   20 or more characters, and a '-' or '_' or 2 capitals
 *
 * Decisions and known limits:
 * - SSN: only the written forms AAA-GG-SSSS and AAA GG SSSS (one separator, used twice) are
 *   found. Nine plain digits are not: they are as often an order number, a ZIP+4 or an account
 *   number, and a false positive there would hide data people need. Cover a column of bare
 *   SSNs with a custom detector or a column rule. Area 000, 666 and 900-999, group 00 and serial
 *   0000 are never SSNs.
 * - Phone: a number must be written as one: in international form ('+' and the country code),
 *   or in national form with separators (spaces, dashes, dots, parentheses). A bare run of digits
 *   ("2133734253") is not taken for a phone, because in a database it is far more often an id or
 *   an amount. National-form numbers are read in the plan's default country (default 'US'): a
 *   German national number in a US plan is found only when written with +49. Digits other than
 *   ASCII (fullwidth, Arabic-Indic) are not looked at. Two numbers in one run with only spaces
 *   between them ("415 555 2671 415 555 2672") are not found; a slash or a comma between them is
 *   fine. Phone detection is the one expensive detector (libphonenumber costs tens of
 *   microseconds per candidate), which is why the candidates are narrowed first.
 * - Email: the local part is letters, digits and `._%+-` (Unicode letters allowed); quoted local
 *   parts and IP-literal domains are not found. The top-level label must be letters (or xn--),
 *   and a few file extensions are not taken for one (`icon@2x.png`).
 * - IPv4: four dotted decimal octets, so a four-part version number ("version 1.2.3.4") is taken
 *   for an address; "v1.2.3.4" and OIDs (more than four parts) are not. IPv6 needs a decimal
 *   digit somewhere, so that words like "dead::beef" or "std::vec" are not addresses.
 * - IBAN: upper-case only (as printed and as stored by banks), electronic or grouped by four
 *   with single spaces.
 * - Secrets: only the formats listed in `findApiKeys`; a bare AWS secret access key or a random
 *   password has no recognisable shape and is not found. A private key block without its END
 *   line (a truncated value) is masked to the end of the text: fail closed.
 * - Custom patterns run in V8's backtracking regex engine: a pattern with catastrophic
 *   backtracking is the administrator's to avoid (the configuration is trusted input). Patterns
 *   that can match the empty string are refused at compile time (checked on probe strings), and
 *   an empty match at run time is skipped rather than looped on.
 */
import { isIP } from 'node:net';
import { electronicFormatIBAN, isValidIBAN } from 'ibantools';
import { findPhoneNumbersInText, isSupportedCountry, type CountryCode } from 'libphonenumber-js/max';

export type BuiltinKind =
  'email' | 'card' | 'ssn' | 'phone' | 'iban' | 'ipv4' | 'ipv6' | 'jwt' | 'private-key' | 'api-key' | 'drawbridge-token';

/** A built-in kind, or `custom:<name>` for a detector from the configuration. */
export type FindingKind = BuiltinKind | `custom:${string}`;

export interface Span {
  readonly start: number;
  readonly end: number;
  readonly kind: FindingKind;
}

/**
 * Every built-in kind, most specific first. On overlapping spans of equal length the kind that
 * comes first here wins; custom kinds come after all of them.
 */
export const KIND_RANK: readonly BuiltinKind[] = Object.freeze([
  'private-key',
  'jwt',
  'drawbridge-token',
  'api-key',
  'iban',
  'card',
  'ssn',
  'email',
  'phone',
  'ipv6',
  'ipv4',
] as const);

export type CustomValidator = 'luhn' | 'iban';

export interface CustomDetectorConfig {
  /** Letters, digits and '-'; the finding's kind is `custom:<name>`. */
  readonly name: string;
  /** JavaScript regular expression source. */
  readonly pattern: string;
  /** Any of 'i', 'm', 's', 'u', 'v', each once ('g' is added; 'g', 'y' and 'd' are refused). */
  readonly flags?: string;
  /** A check every match must also pass: 'luhn' on its digits, 'iban' on its letters and digits. */
  readonly validator?: CustomValidator;
}

export interface DetectionConfig {
  /** The built-in detectors to run; all of them when absent. */
  readonly kinds?: readonly BuiltinKind[];
  /** ISO 3166 alpha-2 country in which phone numbers written in national form are read. Default 'US'. */
  readonly defaultCountry?: string;
  readonly custom?: readonly CustomDetectorConfig[];
}

export interface CompiledCustomDetector {
  readonly kind: `custom:${string}`;
  readonly regex: RegExp;
  readonly validator: CustomValidator | undefined;
}

/** A compiled, frozen detection configuration: made by `compileDetection`, shared freely. */
export interface DetectionPlan {
  readonly kinds: ReadonlySet<BuiltinKind>;
  readonly defaultCountry: CountryCode;
  readonly custom: readonly CompiledCustomDetector[];
  /** The bits of the built-in detectors that find an enabled kind. */
  readonly enabled: Candidates;
}

/** A configuration the detectors (or the strategies) cannot work with; `path` names the field. */
export class MaskingConfigError extends Error {
  override name = 'MaskingConfigError';
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.path = path;
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-filter: one pass over the characters (of a string) or the bytes (of UTF-8 text).

// Character classes, by ASCII code. Every character or byte of 128 and above is NON_ASCII (the
// bytes of one UTF-8 sequence are all 128 and above), so the bytes of a text and its characters
// have the same features, the length aside.
const DIGIT = 1;
const CAPITAL = 2;
const DOT = 4;
const COLON = 8;
const DASH = 16;
const AT = 32;
const DASH_OR_UNDERSCORE = 64;
/** What a phone number is written with besides digits: + ( ) . - / space, tab (and NON_ASCII). */
const PHONE_MARK = 128;
/** What separates an SSN's groups: '-' or a space. */
const SSN_SEPARATOR = 256;
const NON_ASCII = 512;
/** By byte (a character code below 256); every one of 128 and above is NON_ASCII. */
const CLASSES = new Uint16Array(256).fill(NON_ASCII, 128);
for (let c = 48; c <= 57; c++) CLASSES[c] = DIGIT;
for (let c = 65; c <= 90; c++) CLASSES[c] = CAPITAL;
for (const [ch, k] of [
  ['.', DOT | PHONE_MARK],
  [':', COLON],
  ['@', AT],
  ['-', DASH | DASH_OR_UNDERSCORE | PHONE_MARK | SSN_SEPARATOR],
  ['_', DASH_OR_UNDERSCORE],
  [' ', PHONE_MARK | SSN_SEPARATOR],
  ['\t', PHONE_MARK],
  ['+', PHONE_MARK],
  ['(', PHONE_MARK],
  [')', PHONE_MARK],
  ['/', PHONE_MARK],
] as const)
  CLASSES[ch.charCodeAt(0)] = k;

/**
 * Which detectors may find something in a text: a bit per built-in detector (`BuiltinDetector.bit`)
 * whose pre-filter passes. Made by one pass over a string (`textCandidates`) or over UTF-8 bytes
 * (`byteCandidates`, without decoding them), which give the same bits for the same text but
 * where a length is asked (bytes are never fewer than characters, so never fewer bits).
 */
export type Candidates = number;

const EMAIL_BIT = 1;
const CARD_BIT = 2;
const SSN_BIT = 4;
const IBAN_BIT = 8;
const IP_BIT = 16;
const JWT_BIT = 32;
const PEM_BIT = 64;
const KEY_BIT = 128;
const PHONE_BIT = 256;

/** Texts shorter than this hold nothing a built-in detector finds. */
const SHORTEST_FINDING = 3;

/**
 * A value that is wholly a plain number (at most 12 digits, optionally a minus and a fraction) or
 * an ISO date or timestamp: no built-in detector finds anything in one (cards need 13 digits,
 * SSNs their separators, phones a + or separators, IPs three dots or colons in other places), so
 * such a value has no candidates. COPY rows bring many such fields, and timestamps are costly to read
 * for phones and IPv6.
 */
const PLAIN_VALUE = /^(?:-?\d{1,12}(?:\.\d{1,12})?|\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-]\d\d(?::?\d\d)?)?)?)$/;

/** Longest PLAIN_VALUE: a timestamp with microseconds and a zone, 2024-01-15T10:22:33.123456+05:30. */
const PLAIN_MAX = 32;

/** Just after `min` to `max` ASCII digits at `b[i]` (before `end`), or -1. */
function digitsAt(b: Uint8Array, i: number, end: number, min: number, max: number): number {
  if (i < 0) return -1;
  let j = i;
  while (j < end && j - i < max && b[j]! >= 48 && b[j]! <= 57) j++;
  return j - i >= min ? j : -1;
}

/** Whether `b[i]` (before `end`) is the ASCII character `c`. */
const byteIs = (b: Uint8Array, i: number, end: number, c: number): boolean => i >= 0 && i < end && b[i] === c;

const [MINUS, PLUS, DOT_CODE, COLON_CODE, SPACE, T, Z] = ['-', '+', '.', ':', ' ', 'T', 'Z'].map((c) => c.charCodeAt(0)) as [
  number, number, number, number, number, number, number,
];

/** PLAIN_VALUE on the bytes at `b[start, end)`, without decoding them (the tests hold the two to one answer). */
function isPlainBytes(b: Uint8Array, start: number, end: number): boolean {
  // A number: -?\d{1,12}(\.\d{1,12})?
  let i = digitsAt(b, byteIs(b, start, end, MINUS) ? start + 1 : start, end, 1, 12);
  if (i === end || (byteIs(b, i, end, DOT_CODE) && digitsAt(b, i + 1, end, 1, 12) === end)) return true;
  // A date: \d{4}-\d\d-\d\d
  i = digitsAt(b, start, end, 4, 4);
  i = byteIs(b, i, end, MINUS) ? digitsAt(b, i + 1, end, 2, 2) : -1;
  i = byteIs(b, i, end, MINUS) ? digitsAt(b, i + 1, end, 2, 2) : -1;
  if (i === -1 || i === end) return i === end;
  // A time: [ T]\d\d:\d\d(:\d\d(\.\d{1,6})?)?
  i = byteIs(b, i, end, SPACE) || byteIs(b, i, end, T) ? digitsAt(b, i + 1, end, 2, 2) : -1;
  i = byteIs(b, i, end, COLON_CODE) ? digitsAt(b, i + 1, end, 2, 2) : -1;
  if (byteIs(b, i, end, COLON_CODE)) {
    i = digitsAt(b, i + 1, end, 2, 2);
    if (byteIs(b, i, end, DOT_CODE)) i = digitsAt(b, i + 1, end, 1, 6);
  }
  if (i === -1 || i === end) return i === end;
  // A zone: Z|[+-]\d\d(:?\d\d)?
  if (byteIs(b, i, end, Z)) return i + 1 === end;
  i = byteIs(b, i, end, PLUS) || byteIs(b, i, end, MINUS) ? digitsAt(b, i + 1, end, 2, 2) : -1;
  if (i === -1 || i === end) return i === end;
  return digitsAt(b, byteIs(b, i, end, COLON_CODE) ? i + 1 : i, end, 2, 2) === end;
}

/**
 * The pre-filters (the table in the header), from what one pass counted. JWT_BIT and PEM_BIT are
 * set where their counts allow, for the caller to keep only where their text is ("eyJ",
 * "-----BEGIN "); a plain number or timestamp gets none, which the caller tells (`mayBePlain`).
 */
function countedBits(
  length: number,
  classes: number,
  digits: number,
  capitals: number,
  dots: number,
  colons: number,
  dashes: number,
): Candidates {
  if (length < SHORTEST_FINDING) return 0;
  let bits = 0;
  if ((classes & AT) !== 0) bits |= EMAIL_BIT;
  if (digits >= 13) bits |= CARD_BIT;
  if (digits >= 9 && (classes & SSN_SEPARATOR) !== 0) bits |= SSN_BIT; // AAA-GG-SSSS or AAA GG SSSS
  if (digits >= 2 && capitals >= 2 && length >= IBAN_MIN) bits |= IBAN_BIT;
  if ((dots >= 3 && digits >= 4) || (colons >= 2 && digits >= 1)) bits |= IP_BIT;
  if (dots >= 2 && capitals >= 1) bits |= JWT_BIT;
  if (dashes >= 5 && capitals >= 5) bits |= PEM_BIT;
  if (length >= 20 && ((classes & DASH_OR_UNDERSCORE) !== 0 || capitals >= 2)) bits |= KEY_BIT;
  // Written as a phone: a '+' or a separator (a bare run of digits is not taken for one).
  if (digits >= PHONE_DIGITS_MIN && (classes & (PHONE_MARK | NON_ASCII)) !== 0) bits |= PHONE_BIT;
  return bits;
}

/**
 * Whether a text with these bits and counts may still be a plain number or timestamp, which has
 * none (PLAIN_VALUE): not one with '@' or non-ASCII characters, more than 2 capitals (T, Z), or
 * more than 12 digits without a '.' or two dashes (a card number).
 */
const mayBePlain = (bits: Candidates, length: number, classes: number, digits: number, capitals: number, dots: number, dashes: number): boolean =>
  bits !== 0 && length <= PLAIN_MAX && (classes & (AT | NON_ASCII)) === 0 && capitals <= 2 && (digits <= 12 || dots > 0 || dashes > 1);

// The passes below count in local variables: a digit (most of what they count) costs one
// addition, the other counted classes a shift each (DIGIT, CAPITAL, DOT, COLON and DASH are the
// bits 1 to 16 of a class, and no class holds two of them).

export function textCandidates(text: string): Candidates {
  let classes = 0;
  let digits = 0;
  let capitals = 0;
  let dots = 0;
  let colons = 0;
  let dashes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const k = c < 256 ? CLASSES[c]! : NON_ASCII;
    if (k === 0) continue; // most characters: letters and the like
    classes |= k;
    if (k === DIGIT) {
      digits++;
      continue;
    }
    capitals += (k >> 1) & 1;
    dots += (k >> 2) & 1;
    colons += (k >> 3) & 1;
    dashes += (k >> 4) & 1;
  }
  let bits = countedBits(text.length, classes, digits, capitals, dots, colons, dashes);
  if ((bits & JWT_BIT) !== 0 && !text.includes('eyJ')) bits ^= JWT_BIT;
  if ((bits & PEM_BIT) !== 0 && !text.includes('-----BEGIN ')) bits ^= PEM_BIT;
  return mayBePlain(bits, text.length, classes, digits, capitals, dots, dashes) && PLAIN_VALUE.test(text) ? 0 : bits;
}

/** The candidates of the UTF-8 text at `bytes[start, end)`, without decoding it. */
export function byteCandidates(bytes: Uint8Array, start: number, end: number): Candidates {
  let classes = 0;
  let digits = 0;
  let capitals = 0;
  let dots = 0;
  let colons = 0;
  let dashes = 0;
  for (let i = start; i < end; i++) {
    const k = CLASSES[bytes[i]!]!;
    if (k === 0) continue;
    classes |= k;
    if (k === DIGIT) {
      digits++;
      continue;
    }
    capitals += (k >> 1) & 1;
    dots += (k >> 2) & 1;
    colons += (k >> 3) & 1;
    dashes += (k >> 4) & 1;
  }
  return bytesBits(bytes, start, end, classes, digits, capitals, dots, colons, dashes);
}

/** The candidates of `bytes[start, end)` from what one pass over them counted. */
function bytesBits(
  bytes: Uint8Array,
  start: number,
  end: number,
  classes: number,
  digits: number,
  capitals: number,
  dots: number,
  colons: number,
  dashes: number,
): Candidates {
  let bits = countedBits(end - start, classes, digits, capitals, dots, colons, dashes);
  if ((bits & JWT_BIT) !== 0 && !bytesInclude(bytes, start, end, EYJ)) bits ^= JWT_BIT;
  if ((bits & PEM_BIT) !== 0 && !bytesInclude(bytes, start, end, PEM_BEGIN_BYTES)) bits ^= PEM_BIT;
  return mayBePlain(bits, end - start, classes, digits, capitals, dots, dashes) && isPlainBytes(bytes, start, end) ? 0 : bits;
}

/** A byte that ends a field of a line of COPY text or csv: tab, comma, line end. It has no other class in FIELD_CLASSES. */
const FIELD_END = 1024;
/** CLASSES for `fieldCandidates`: the same, but FIELD_END for the bytes that end a field. */
const FIELD_CLASSES = Uint16Array.from(CLASSES);
for (const ch of '\t,\n') FIELD_CLASSES[ch.charCodeAt(0)] = FIELD_END;

/**
 * The fields of a line of COPY text or csv at `bytes[start, end)`, split at tabs, commas and the
 * line end, with their candidates, in one pass over the line (the loop of `byteCandidates`, which
 * also ends a field: faster than a pass to split and one over each field): each field as three
 * numbers in `out` from `out[0]` on (its start, its end and what `byteCandidates` gives for it).
 * Returns how many fields there are (the last one, after the last tab, comma or line end, may be
 * empty).
 */
export function fieldCandidates(bytes: Uint8Array, start: number, end: number, out: number[]): number {
  let fields = 0;
  let from = start;
  let classes = 0;
  let digits = 0;
  let capitals = 0;
  let dots = 0;
  let colons = 0;
  let dashes = 0;
  for (let i = start; i < end; i++) {
    let k = FIELD_CLASSES[bytes[i]!]!;
    // Most bytes of most fields are letters: a tight loop over them.
    while (k === 0 && ++i < end) k = FIELD_CLASSES[bytes[i]!]!;
    if (k === 0) break;
    if (k === DIGIT) {
      classes |= k;
      digits++;
      continue;
    }
    if (k === FIELD_END) {
      out[3 * fields] = from;
      out[3 * fields + 1] = i;
      out[3 * fields + 2] = classes === 0 ? 0 : bytesBits(bytes, from, i, classes, digits, capitals, dots, colons, dashes);
      fields++;
      from = i + 1;
      classes = digits = capitals = dots = colons = dashes = 0;
      continue;
    }
    classes |= k;
    capitals += (k >> 1) & 1;
    dots += (k >> 2) & 1;
    colons += (k >> 3) & 1;
    dashes += (k >> 4) & 1;
  }
  // The last field, after the last tab, comma or line end.
  out[3 * fields] = from;
  out[3 * fields + 1] = end;
  out[3 * fields + 2] = classes === 0 ? 0 : bytesBits(bytes, from, end, classes, digits, capitals, dots, colons, dashes);
  return fields + 1;
}

const EYJ = Buffer.from('eyJ');
const PEM_BEGIN_BYTES = Buffer.from('-----BEGIN ');

/** Whether `ascii` occurs in `bytes[start, end)`: a bounded search (Buffer#indexOf would look on past `end`, through the rest of the chunk). */
function bytesInclude(bytes: Uint8Array, start: number, end: number, ascii: Uint8Array): boolean {
  const first = ascii[0];
  next: for (let i = start; i + ascii.length <= end; i++) {
    if (bytes[i] !== first) continue;
    for (let j = 1; j < ascii.length; j++) if (bytes[i + j] !== ascii[j]) continue next;
    return true;
  }
  return false;
}

const isAsciiAlnum = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** True when the character at `i` (if any) would glue a match to a word: a letter, digit or '_'. */
function wordCharAt(text: string, i: number): boolean {
  if (i < 0 || i >= text.length) return false;
  const c = text.charCodeAt(i);
  return isAsciiAlnum(c) || c === 95;
}

/**
 * The matches of a global regex. The module's regexes keep their state in `lastIndex`, so each
 * use runs to its end before another starts on the same regex (all of this is synchronous, and no
 * loop over one regex calls code that uses it again).
 */
function* matches(regex: RegExp, text: string): Generator<RegExpExecArray> {
  regex.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = regex.exec(text)) !== null) {
    // An empty match would never advance; skip it (only a custom pattern can produce one).
    if (m[0].length === 0) regex.lastIndex++;
    else yield m;
  }
}

const span = (start: number, end: number, kind: FindingKind): Span => ({ start, end, kind });

// ---------------------------------------------------------------------------------------------
// Email

// Local part: the characters real addresses use. '/', '=', '?' and quotes are left out on
// purpose: they are legal but rare, and common just before an address in URLs and SQL text.
const LOCAL_ASCII = new Uint8Array(128);
for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-') LOCAL_ASCII[ch.charCodeAt(0)] = 1;
const LETTER_OR_DIGIT = /^[\p{L}\p{N}]$/u;
const EMAIL_DOMAIN = /(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+(\p{L}{2,63}|xn--[a-z0-9-]{1,59})(?![\p{L}\p{N}_-])/iuy;
/** Not top-level domains, but what follows '@' in file names such as `icon@2x.png`. */
const FILE_EXTENSIONS = new Set([
  'png',
  'jpg',
  'jpeg',
  'gif',
  'svg',
  'webp',
  'bmp',
  'ico',
  'tif',
  'tiff',
  'css',
  'js',
  'mjs',
  'ts',
  'json',
  'map',
  'html',
  'htm',
  'txt',
  'pdf',
  'xml',
]);
const MAX_LOCAL = 256;

/** Where the local part before the '@' at `at` starts, not before `floor` (== at when there is none). */
function localPartStart(text: string, at: number, floor: number): number {
  let j = at;
  while (j > floor && at - j < MAX_LOCAL) {
    const c = text.charCodeAt(j - 1);
    if (c < 128) {
      if (LOCAL_ASCII[c] !== 1) break;
      j--;
    } else if (c >= 0xdc00 && c <= 0xdfff && j - 2 >= floor) {
      const cp = text.codePointAt(j - 2);
      if (cp === undefined || cp < 0x10000 || !LETTER_OR_DIGIT.test(String.fromCodePoint(cp))) break;
      j -= 2;
    } else {
      if (!LETTER_OR_DIGIT.test(text[j - 1]!)) break;
      j--;
    }
  }
  while (j < at && text.charCodeAt(j) === 46) j++; // a local part does not start with '.'
  return j;
}

/** Email addresses: local@domain.tld, the TLD made of letters. */
export function findEmails(text: string): Span[] {
  const out: Span[] = [];
  let from = 0;
  for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
    const start = localPartStart(text, at, from);
    if (start === at) continue;
    EMAIL_DOMAIN.lastIndex = at + 1;
    const m = EMAIL_DOMAIN.exec(text);
    if (m === null || FILE_EXTENSIONS.has(m[1]!.toLowerCase())) continue;
    const end = at + 1 + m[0].length;
    out.push(span(start, end, 'email'));
    from = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Payment cards

/** The Luhn (mod 10) check on a string of ASCII digits. */
export function luhnValid(digits: string): boolean {
  if (digits.length < 2) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** The card network of a card number (ASCII digits only), by IIN range and length; undefined when none. */
export function cardNetwork(d: string): string | undefined {
  if (d.length < 13 || !isAllDigits(d)) return undefined;
  return networkOf(d.length, Number(d.slice(0, 6)));
}

/**
 * The card network of a number of `n` digits whose first six are `iin` (as a number), by IIN
 * range and length: what `cardNetwork` says of its digits, for callers that read them as bytes.
 * Every network needs 13 digits or more.
 */
function networkOf(n: number, iin: number): string | undefined {
  const p2 = Math.trunc(iin / 10_000);
  const p3 = Math.trunc(iin / 1_000);
  const p4 = Math.trunc(iin / 100);
  if (n < 13) return undefined;
  if (p2 >= 40 && p2 <= 49 && (n === 13 || n === 16 || n === 19)) return 'visa';
  if (n === 16 && ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))) return 'mastercard';
  if (n === 15 && (p2 === 34 || p2 === 37)) return 'amex';
  if (n >= 16 && (p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65 || (iin >= 622126 && iin <= 622925))) return 'discover';
  if (n >= 16 && p4 >= 3528 && p4 <= 3589) return 'jcb';
  if (n >= 14 && ((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39)) return 'diners';
  if (n >= 16 && p2 === 62) return 'unionpay';
  if (p4 === 5018 || p4 === 5020 || p4 === 5038 || p4 === 5893 || p4 === 6304 || p4 === 6759 || (p4 >= 6761 && p4 <= 6763)) return 'maestro';
  return undefined;
}

/** A run of 13 or more digits, with single spaces or dashes between them; cards are looked for inside. */
const CARD_RUN = /(?<![A-Za-z0-9_])\d(?:[ -]?\d){12,}(?![A-Za-z0-9_])/g;
const DIGIT_GROUP = /\d+/g;

function isAllDigits(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Network and Luhn, and a single kind of separator ("4111-1111 1111 1111" is not printed so). */
function isCard(candidate: string): boolean {
  if (candidate.includes(' ') && candidate.includes('-')) return false;
  const digits = isAllDigits(candidate) ? candidate : candidate.replace(/[ -]/g, '');
  return cardNetwork(digits) !== undefined && luhnValid(digits);
}

/**
 * Payment card numbers: 13-19 digits, a known network's IIN range, Luhn; plain, or grouped the
 * way cards are printed (a first group of four, then groups of 3 to 6, one kind of separator).
 * In a run of groups ("4111111111111111 5555555555554444", "qty 1 4111 1111 1111 1111") each
 * card is found on group boundaries, the longest from the left first; a plain run of 20 or more
 * digits holds none.
 */
export function findCards(text: string): Span[] {
  // How most cards are stored: a value that is one run of digits, nothing around it.
  if (text.length >= 13 && text.length <= 19 && isAllDigits(text)) return isCard(text) ? [span(0, text.length, 'card')] : [];
  const out: Span[] = [];
  for (const m of matches(CARD_RUN, text)) {
    const run = m[0];
    if (run.length <= 19 && isAllDigits(run)) {
      // How most cards are stored: one group, the whole run.
      if (isCard(run)) out.push(span(m.index, m.index + run.length, 'card'));
      continue;
    }
    const groups = [...run.matchAll(DIGIT_GROUP)].map((g) => [g.index, g.index + g[0].length] as const);
    for (let i = 0; i < groups.length;) {
      let last = -1;
      const first = groups[i]![1] - groups[i]![0];
      for (let j = i, digits = 0; j < groups.length; j++) {
        const size = groups[j]![1] - groups[j]![0];
        digits += size;
        if (digits > 19 || (j > i && (first !== 4 || size < 3 || size > 6))) break;
        if (digits >= 13 && isCard(run.slice(groups[i]![0], groups[j]![1]))) last = j;
      }
      if (last === -1) {
        i++;
        continue;
      }
      out.push(span(m.index + groups[i]![0], m.index + groups[last]![1], 'card'));
      i = last + 1;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// US Social Security numbers

// Dashed: not glued by a dash to more digits. Spaced, weaker evidence: not next to more numbers.
const SSN =
  /(?<![A-Za-z0-9_]|\d-)(\d{3})-(\d{2})-(\d{4})(?![A-Za-z0-9_]|-\d)|(?<![A-Za-z0-9_]|\d )(\d{3}) (\d{2}) (\d{4})(?![A-Za-z0-9_]| \d)/g;

/** True for an area, group and serial that the SSA can have issued. */
export function ssnValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  return a !== 0 && a !== 666 && a < 900 && group !== '00' && serial !== '0000';
}

/** US SSNs written AAA-GG-SSSS or AAA GG SSSS (see the header: bare nine digits are not). */
export function findSsns(text: string): Span[] {
  const out: Span[] = [];
  for (const m of matches(SSN, text)) {
    const [area, group, serial] = m[1] === undefined ? [m[4]!, m[5]!, m[6]!] : [m[1], m[2]!, m[3]!];
    if (ssnValid(area, group, serial)) out.push(span(m.index, m.index + m[0].length, 'ssn'));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phone numbers

// A run that could be written as a phone number: an optional '+' or '(' and digits with the
// separators people write, and an optional extension. Bounded, so one run stays one number.
const PHONE_CANDIDATE = /[+(]?\d[\d \t().\-/\u00a0\u2010-\u2015\u2212]{0,40}\d(?:[ \t]*(?:ext\.?|x|#)[ \t]*\d{1,7})?/gi;
/** Written as a phone number: international, or with a separator between digits. */
const WRITTEN_AS_PHONE = /^\+|\d[^\d]+\d/;
const PHONE_DIGITS_MIN = 7;

function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/** A date at the start of a run ("2024-01-15 415-555-2671"), cut off before the run is read. */
const DATE_PREFIX = /^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?!\d)[ \t]*/;
/** Shapes that are something else: an amount or a version (12345.67), an address or a version (10.1.2.7). */
const NOT_A_PHONE = /^\d+\.\d+$|^\d{1,3}(?:\.\d{1,3}){3}$/;
const PHONE_EXTENSION = /[ \t]*(?:ext\.?|x|#)[ \t]*\d{1,7}$/i;
const isHyphenGlued = (text: string, hyphen: number, word: number): boolean =>
  text.charCodeAt(hyphen) === 45 && word >= 0 && word < text.length && isAsciiAlnum(text.charCodeAt(word));

/**
 * Whether a range lies inside one of the spans, for ranges asked in increasing `start` order:
 * linear over the whole text, however many spans and ranges.
 */
class ClaimedRanges {
  readonly #spans: readonly Span[];
  #next = 0;
  #maxEnd = -1;
  constructor(spans: readonly Span[]) {
    this.#spans = [...spans].sort((a, b) => a.start - b.start);
  }
  covers(start: number, end: number): boolean {
    while (this.#next < this.#spans.length && this.#spans[this.#next]!.start <= start) {
      this.#maxEnd = Math.max(this.#maxEnd, this.#spans[this.#next]!.end);
      this.#next++;
    }
    return end <= this.#maxEnd;
  }
}

/**
 * Narrows a phone-shaped run to what is worth handing to libphonenumber (it costs tens of
 * microseconds a call, hundreds on a long run of digits): the range to read, or undefined.
 */
function phoneCandidate(text: string, start: number, end: number, claimed: ClaimedRanges): readonly [number, number] | undefined {
  // Part of a word or of a hyphenated token (ORD-1000042, a UUID's groups).
  if (wordCharAt(text, start - 1) || wordCharAt(text, end)) return undefined;
  if (isHyphenGlued(text, start - 1, start - 2) || isHyphenGlued(text, end, end + 1)) return undefined;
  const date = DATE_PREFIX.exec(text.slice(start, end));
  if (date !== null) start += date[0].length;
  const main = text.slice(start, end).replace(PHONE_EXTENSION, '');
  if (countDigits(main) < PHONE_DIGITS_MIN || !WRITTEN_AS_PHONE.test(main) || NOT_A_PHONE.test(main)) return undefined;
  // What another detector already took (a card, an SSN, an IBAN, an address) is not read again.
  if (claimed.covers(start, end)) return undefined;
  return [start, end];
}

/**
 * How many runs of one text libphonenumber reads. A text made to be slow (thousands of
 * phone-shaped runs) would otherwise cost seconds; past the budget, a run that passed every
 * cheap check is taken for a phone without asking: fail closed, more masking, never less.
 */
export const PHONE_LIBRARY_BUDGET = 256;

/**
 * Phone numbers that libphonenumber (full metadata, leniency VALID) finds valid, written as phone
 * numbers (see the header), national form read in `defaultCountry`. Runs inside `claimed` spans
 * are skipped.
 */
export function findPhones(text: string, defaultCountry: CountryCode = 'US', claimed: readonly Span[] = []): Span[] {
  const out: Span[] = [];
  const taken = new ClaimedRanges(claimed);
  let covered = 0;
  let calls = 0;
  for (const m of matches(PHONE_CANDIDATE, text)) {
    if (m.index < covered) continue;
    const range = phoneCandidate(text, m.index, m.index + m[0].length, taken);
    if (range === undefined) continue;
    if (++calls > PHONE_LIBRARY_BUDGET) {
      out.push(span(range[0], range[1], 'phone'));
      covered = range[1];
      continue;
    }
    // libphonenumber looks at one character before a candidate and a few after it (":mm" of a
    // timestamp), so that much context goes with the window.
    const from = Math.max(0, range[0] - 1);
    const window = text.slice(from, Math.min(text.length, range[1] + 3));
    for (const found of findPhoneNumbersInText(window, { defaultCountry })) {
      const s = from + found.startsAt;
      const e = from + found.endsAt;
      if (s < covered || !WRITTEN_AS_PHONE.test(text.slice(s, e)) || !found.number.isValid()) continue;
      out.push(span(s, e, 'phone'));
      covered = e;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// IBAN

const IBAN_ELECTRONIC = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}[A-Z0-9]{11,30}(?![A-Za-z0-9])/g;
const IBAN_PRINT = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,8}(?: [A-Z0-9]{1,3})?(?![A-Za-z0-9])/g;
const IBAN_MIN = 15;
const IBAN_START = /[A-Z]{2}\d{2}/;

const countSpaces = (s: string): number => s.length - s.replaceAll(' ', '').length;

const ibanValid = (candidate: string): boolean => {
  const electronic = electronicFormatIBAN(candidate);
  return electronic !== null && electronic.length >= IBAN_MIN && isValidIBAN(electronic);
};

/** IBANs, electronic (DE89370400440532013000) or printed (DE89 3704 0044 0532 0130 00), checksum and BBAN format valid. */
export function findIbans(text: string): Span[] {
  const out: Span[] = [];
  // Where both patterns begin; far cheaper to look for than either (SQL text has capitals and digits).
  if (!IBAN_START.test(text)) return out;
  for (const m of matches(IBAN_ELECTRONIC, text)) {
    if (ibanValid(m[0])) out.push(span(m.index, m.index + m[0].length, 'iban'));
  }
  for (const m of matches(IBAN_PRINT, text)) {
    // The last group may be the next word ("... 7034 EURO"): drop groups until it validates.
    for (let candidate = m[0]; candidate.length - countSpaces(candidate) >= IBAN_MIN;) {
      if (ibanValid(candidate)) {
        out.push(span(m.index, m.index + candidate.length, 'iban'));
        break;
      }
      candidate = candidate.slice(0, candidate.lastIndexOf(' '));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// IP addresses

const IPV4 = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)/g;
const IPV6 = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)/g;

/** IPv4 (four decimal octets) and IPv6 addresses, as `node:net` parses them. */
export function findIpAddresses(text: string): Span[] {
  const out: Span[] = [];
  for (const m of matches(IPV4, text)) {
    if (isIP(m[0]) === 4) out.push(span(m.index, m.index + m[0].length, 'ipv4'));
  }
  for (const m of matches(IPV6, text)) {
    if (/\d/.test(m[0]) && isIP(m[0]) === 6) out.push(span(m.index, m.index + m[0].length, 'ipv6'));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JWTs

// JWE: header.key.iv.ciphertext.tag (the key is empty for "dir"); JWS: header.payload.signature
// (the signature is empty for alg "none").
const JWT =
  /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.(?:[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)(?![A-Za-z0-9_-])/g;
const JWT_HEADER_MAX = 4096;

function jwtHeaderHasAlg(encoded: string): boolean {
  if (encoded.length > JWT_HEADER_MAX) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

/** JWTs (JWS compact, and JWE): base64url parts whose first decodes to a JSON object with "alg". */
export function findJwts(text: string): Span[] {
  const out: Span[] = [];
  for (const m of matches(JWT, text)) {
    if (jwtHeaderHasAlg(m[0].slice(0, m[0].indexOf('.')))) out.push(span(m.index, m.index + m[0].length, 'jwt'));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Private keys

const PEM_BEGIN = /-----BEGIN ((?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?)-----/y;
const PEM_BODY_CHAR = /[A-Za-z0-9+/=]/;

/** PEM (and PGP armoured) private key blocks, BEGIN to END; without an END, to the end of the text. */
export function findPrivateKeys(text: string): Span[] {
  const out: Span[] = [];
  let from = 0;
  for (let i = text.indexOf('-----BEGIN '); i !== -1; i = text.indexOf('-----BEGIN ', Math.max(i + 1, from))) {
    PEM_BEGIN.lastIndex = i;
    const m = PEM_BEGIN.exec(text);
    if (m === null) continue;
    const bodyStart = i + m[0].length;
    const footer = `-----END ${m[1]}-----`;
    const endAt = text.indexOf(footer, bodyStart);
    const end = endAt === -1 ? text.length : endAt + footer.length;
    // A block with no key material in it (an already masked one) is nothing to mask.
    if (!PEM_BODY_CHAR.test(text.slice(bodyStart, endAt === -1 ? end : endAt))) continue;
    out.push(span(i, end, 'private-key'));
    from = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// API keys and tokens

// The gateway's own: `dbr_` + 32 random bytes in base64url (access credentials), and the same
// behind a three-letter kind (`dbr_sak_` service-account keys, `dbr_ses_`, `dbr_ref_`).
const API_KEY = new RegExp(
  '(?<![A-Za-z0-9_-])(?:' +
    [
      '(?<dbr>dbr_(?:[a-z]{3}_)?[A-Za-z0-9_-]{43})',
      '(?:AKIA|ASIA)[A-Z0-9]{16}', // AWS access key id
      'gh[pousr]_[A-Za-z0-9]{36,251}', // GitHub classic, OAuth, user-to-server, server-to-server, refresh
      'github_pat_[A-Za-z0-9_]{22,251}', // GitHub fine-grained
      'xox[abpr]-[A-Za-z0-9-]{10,251}', // Slack bot, app, user, refresh tokens
      'xapp-[A-Za-z0-9-]{10,251}', // Slack app-level token
      '(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,251}', // Stripe secret and restricted keys
      'pk_live_[A-Za-z0-9]{16,251}', // Stripe live publishable key (names the account)
      'AIza[A-Za-z0-9_-]{35}', // Google API key
      '(?<sk>sk-[A-Za-z0-9_-]{20,251})', // OpenAI (sk-, sk-proj-, ...), Anthropic (sk-ant-...)
    ].join('|') +
    ')(?![A-Za-z0-9_-])',
  'g',
);
/** What each of API_KEY's patterns begins with: far cheaper to look for than API_KEY, with its look-behind at every character. */
const API_KEY_START = /dbr_|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abpr]-|xapp-|[sr]k_(?:live|test)_|pk_live_|AIza|sk-/;
const HAS_DIGIT_UPPER_LOWER = /^(?=.*\d)(?=.*[A-Z])(?=.*[a-z])/;

/**
 * API keys and tokens with a recognisable prefix (AWS, GitHub, Slack, Stripe, Google, OpenAI,
 * Anthropic: kind 'api-key') and the gateway's own credentials (kind 'drawbridge-token').
 */
export function findApiKeys(text: string): Span[] {
  const out: Span[] = [];
  if (!API_KEY_START.test(text)) return out;
  for (const m of matches(API_KEY, text)) {
    const groups = m.groups ?? {};
    // `sk-` is a common start of ordinary words ("sk-learn-tutorials-for-beginners"): a key is
    // random, so it mixes digits, capitals and small letters.
    if (groups.sk !== undefined && !HAS_DIGIT_UPPER_LOWER.test(groups.sk.slice(3))) continue;
    out.push(span(m.index, m.index + m[0].length, groups.dbr !== undefined ? 'drawbridge-token' : 'api-key'));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Custom detectors

const CUSTOM_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
const CUSTOM_FLAGS = /^[imsuv]*$/;
const CUSTOM_PATTERN_MAX = 2000;
/** Strings on which a pattern that can match the empty string is very likely to show it. */
const EMPTY_PROBES = ['', ' ', 'a', 'Z', '0', '_', '-', '.', '@', '\n', 'ab 12', 'x-y_z.0\n9 A'];

function compileCustom(config: CustomDetectorConfig, path: string): CompiledCustomDetector {
  if (typeof config.name !== 'string' || !CUSTOM_NAME.test(config.name)) {
    throw new MaskingConfigError(`${path}.name`, 'must be letters, digits and "-" (at most 63)');
  }
  if (typeof config.pattern !== 'string' || config.pattern.length === 0 || config.pattern.length > CUSTOM_PATTERN_MAX) {
    throw new MaskingConfigError(`${path}.pattern`, `must be a non-empty regular expression of at most ${CUSTOM_PATTERN_MAX} characters`);
  }
  const flags = config.flags ?? '';
  if (!CUSTOM_FLAGS.test(flags) || new Set(flags).size !== flags.length) {
    throw new MaskingConfigError(`${path}.flags`, 'may only hold i, m, s, u, v, each once');
  }
  if (config.validator !== undefined && config.validator !== 'luhn' && config.validator !== 'iban') {
    throw new MaskingConfigError(`${path}.validator`, 'must be "luhn" or "iban"');
  }
  let regex: RegExp;
  try {
    regex = new RegExp(config.pattern, `${flags}g`);
  } catch (err) {
    throw new MaskingConfigError(`${path}.pattern`, `is not a valid regular expression (${(err as Error).message})`);
  }
  for (const probe of EMPTY_PROBES) {
    regex.lastIndex = 0;
    for (let m = regex.exec(probe); m !== null; m = regex.exec(probe)) {
      if (m[0].length === 0) throw new MaskingConfigError(`${path}.pattern`, 'can match the empty string');
    }
  }
  return { kind: `custom:${config.name}`, regex, validator: config.validator };
}

function customValid(value: string, validator: CustomValidator | undefined): boolean {
  if (validator === 'luhn') return luhnValid(value.replace(/\D/g, ''));
  if (validator === 'iban') return ibanValid(value.replace(/[^A-Za-z0-9]/g, '').toUpperCase());
  return true;
}

function findCustom(text: string, custom: CompiledCustomDetector): Span[] {
  const out: Span[] = [];
  for (const m of matches(custom.regex, text)) {
    if (customValid(m[0], custom.validator)) out.push(span(m.index, m.index + m[0].length, custom.kind));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole values, on their bytes

/** By byte: 1 for an ASCII letter or digit, 2 for '-'; 0 for everything else (bytes of 128 and above too). */
const DOMAIN_CHAR = new Uint8Array(256);
for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') DOMAIN_CHAR[ch.charCodeAt(0)] = 1;
DOMAIN_CHAR[45] = 2;
const isAsciiLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
/** FILE_EXTENSIONS, each packed into a number (see `packedLower`). */
const FILE_EXTENSION_KEYS = new Set([...FILE_EXTENSIONS].map((e) => packedLower(Buffer.from(e), 0, e.length)));

/** The ASCII letters at `b[start, end)` (at most 4) in lower case, packed into one number with their count; -1 when longer. */
function packedLower(b: Uint8Array, start: number, end: number): number {
  if (end - start > 4) return -1;
  let key = end - start;
  for (let i = start; i < end; i++) key = key * 256 + (b[i]! | 0x20);
  return key;
}

/**
 * Whether the bytes at `b[start, end)` are, all of them, one email address as `findEmails` finds
 * it in text: a local part of LOCAL_ASCII characters (not starting with '.', at most MAX_LOCAL),
 * the only '@', and a domain that EMAIL_DOMAIN matches to the very end: labels of ASCII letters,
 * digits and '-' (1 to 63, a letter or digit at each end) each followed by '.', then a top-level
 * label of 2 to 63 letters (not one of FILE_EXTENSIONS) or `xn--` and 1 to 59 letters, digits
 * and '-'. False for anything else, non-ASCII included: then the text decides.
 */
function wholeEmail(b: Uint8Array, start: number, end: number): boolean {
  let at = start;
  for (; at < end; at++) {
    const c = b[at]!;
    if (c === 64) break;
    if (c >= 128 || LOCAL_ASCII[c] !== 1) return false;
  }
  if (at === end || at === start || at - start > MAX_LOCAL || b[start] === 46) return false;
  // Each label followed by '.'; EMAIL_DOMAIN's greedy labels end at the last one only when all are labels.
  let from = at + 1;
  let labels = 0;
  for (;;) {
    let i = from;
    while (i < end && DOMAIN_CHAR[b[i]!] !== 0) i++;
    if (i === end) break;
    if (b[i] !== 46) return false;
    if (i === from || i - from > 63 || DOMAIN_CHAR[b[from]!] !== 1 || DOMAIN_CHAR[b[i - 1]!] !== 1) return false;
    labels++;
    from = i + 1;
  }
  if (labels === 0) return false;
  // The top-level label, [from, end): \p{L}{2,63} first, xn--[a-z0-9-]{1,59} (any case) when that fails.
  const length = end - from;
  let letters = true;
  for (let i = from; i < end && letters; i++) letters = isAsciiLetter(b[i]!);
  if (letters) return length >= 2 && length <= 63 && !FILE_EXTENSION_KEYS.has(packedLower(b, from, end));
  return length >= 5 && length <= 63 && (b[from]! | 0x20) === 0x78 && (b[from + 1]! | 0x20) === 0x6e && b[from + 2] === 45 && b[from + 3] === 45;
}

/**
 * Whether the bytes at `b[start, end)` are 13 to 19 ASCII digits that `isCard` takes for a card
 * (network and Luhn); undefined when they are not 13 to 19 ASCII digits.
 */
function wholeCard(b: Uint8Array, start: number, end: number): boolean | undefined {
  const n = end - start;
  if (n < 13 || n > 19) return undefined;
  let iin = 0;
  let sum = 0;
  for (let i = end - 1, double = false; i >= start; i--, double = !double) {
    let d = b[i]! - 48;
    if (d < 0 || d > 9) return undefined;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  for (let i = start; i < start + 6; i++) iin = iin * 10 + (b[i]! - 48);
  return sum % 10 === 0 && networkOf(n, iin) !== undefined;
}

/**
 * What `detect` finds in the UTF-8 text at `bytes[start, end)`, told on its bytes without
 * decoding them, for the two shapes that sensitive columns hold most: 'email' when the whole text
 * is one email address (then `detect` gives exactly one span, of that kind, over all of it: the
 * longest span there can be, and no other detector's span can hold its '@'), 'card' when it is
 * 13 to 19 ASCII digits that make a card (no other pre-filter passes on those, and `findCards`
 * takes or leaves such a value whole), null when they make none (`detect` gives nothing), and
 * undefined for every other text (decode it and `detect`). Plans with custom detectors always
 * get undefined. `candidates`: the bytes' (`byteCandidates`).
 */
export function detectWhole(
  bytes: Uint8Array,
  start: number,
  end: number,
  plan: DetectionPlan,
  candidates: Candidates,
): 'email' | 'card' | null | undefined {
  if (plan.custom.length > 0) return undefined;
  const bits = candidates & plan.enabled;
  if ((bits & EMAIL_BIT) !== 0) return wholeEmail(bytes, start, end) ? 'email' : undefined;
  if (bits !== CARD_BIT) return undefined;
  const card = wholeCard(bytes, start, end);
  return card === undefined ? undefined : card ? 'card' : null;
}

// ---------------------------------------------------------------------------------------------
// The plan and `detect`

interface BuiltinDetector {
  readonly kinds: readonly BuiltinKind[];
  /** Its bit in `Candidates`: it runs only when its pre-filter passed. */
  readonly bit: number;
  /** `claimed`: what the detectors before this one found. */
  readonly find: (text: string, plan: DetectionPlan, claimed: readonly Span[]) => Span[];
}

const BUILTINS: readonly BuiltinDetector[] = [
  { kinds: ['email'], bit: EMAIL_BIT, find: findEmails },
  { kinds: ['card'], bit: CARD_BIT, find: findCards },
  { kinds: ['ssn'], bit: SSN_BIT, find: findSsns },
  { kinds: ['iban'], bit: IBAN_BIT, find: findIbans },
  { kinds: ['ipv4', 'ipv6'], bit: IP_BIT, find: findIpAddresses },
  { kinds: ['jwt'], bit: JWT_BIT, find: findJwts },
  { kinds: ['private-key'], bit: PEM_BIT, find: findPrivateKeys },
  { kinds: ['api-key', 'drawbridge-token'], bit: KEY_BIT, find: findApiKeys },
  // Last: the expensive one, which skips what the others claimed.
  { kinds: ['phone'], bit: PHONE_BIT, find: (t, p, claimed) => findPhones(t, p.defaultCountry, claimed) },
];

/** Each built-in detector at the index of its bit; bits rise in the order of BUILTINS, so it runs in that order. */
const BY_BIT: readonly (BuiltinDetector | undefined)[] = (() => {
  const byBit: (BuiltinDetector | undefined)[] = [];
  BUILTINS.forEach((b, i) => {
    if (b.bit !== 1 << i) throw new Error(`built-in detector ${b.kinds[0]}: bit ${b.bit} out of order`);
    byBit[i] = b;
  });
  return byBit;
})();

/**
 * Compiles a detection configuration once (custom patterns included); throws MaskingConfigError
 * with the failing field's path.
 */
export function compileDetection(config: DetectionConfig = {}): DetectionPlan {
  const kinds = config.kinds ?? KIND_RANK;
  kinds.forEach((kind, i) => {
    if (!KIND_RANK.includes(kind))
      throw new MaskingConfigError(`kinds[${i}]`, `unknown detector "${String(kind)}" (known: ${KIND_RANK.join(', ')})`);
  });
  const country = config.defaultCountry ?? 'US';
  if (!isSupportedCountry(country))
    throw new MaskingConfigError('defaultCountry', `"${country}" is not a supported ISO 3166 alpha-2 country`);
  const custom = (config.custom ?? []).map((c, i) => compileCustom(c, `custom[${i}]`));
  const names = new Set<string>();
  custom.forEach((c, i) => {
    if (names.has(c.kind)) throw new MaskingConfigError(`custom[${i}].name`, `"${c.kind.slice(7)}" is used twice`);
    names.add(c.kind);
  });
  const enabled = BUILTINS.filter((b) => b.kinds.some((k) => kinds.includes(k))).reduce((bits, b) => bits | b.bit, 0);
  return Object.freeze({ kinds: new Set(kinds), defaultCountry: country, custom: Object.freeze(custom), enabled });
}

/** Every built-in detector, phones read as US numbers, no custom detectors. */
export const DEFAULT_DETECTION: DetectionPlan = compileDetection();

const rankOf = (kind: FindingKind): number => {
  const i = KIND_RANK.indexOf(kind as BuiltinKind);
  return i === -1 ? KIND_RANK.length : i;
};

/**
 * Keeps the longest (then most specific, then first) of overlapping spans; sorted by start.
 * Linear in the text covered (times the number of detectors), whatever the number of spans.
 */
export function resolveOverlaps(spans: readonly Span[]): Span[] {
  const byStart = [...spans].sort((a, b) => a.start - b.start);
  let maxEnd = 0;
  let overlapping = false;
  for (const s of byStart) {
    if (s.start < maxEnd) overlapping = true;
    maxEnd = Math.max(maxEnd, s.end);
  }
  if (!overlapping) return byStart;
  const byPreference = byStart.sort((a, b) => b.end - b.start - (a.end - a.start) || rankOf(a.kind) - rankOf(b.kind) || a.start - b.start);
  const taken = new Uint8Array(maxEnd);
  const kept: Span[] = [];
  for (const s of byPreference) {
    let free = true;
    for (let i = s.start; i < s.end && free; i++) free = taken[i] === 0;
    if (!free) continue;
    taken.fill(1, s.start, s.end);
    kept.push(s);
  }
  return kept.sort((a, b) => a.start - b.start);
}


/**
 * Runs every enabled detector whose pre-filter passes; non-overlapping spans sorted by start.
 * `candidates`: the text's, when the caller has them already (`byteCandidates` of its UTF-8 bytes).
 */
export function detect(text: string, plan: DetectionPlan = DEFAULT_DETECTION, candidates?: Candidates): Span[] {
  const spans: Span[] = [];
  if (text.length === 0) return spans;
  if (plan.custom.length > 0) for (const c of plan.custom) for (const s of findCustom(text, c)) spans.push(s);
  const bits = (candidates ?? textCandidates(text)) & plan.enabled;
  // The detectors whose pre-filter passed, lowest bit (the order of BUILTINS) first.
  for (let rest = bits; rest !== 0; rest &= rest - 1) {
    const b = BY_BIT[31 - Math.clz32(rest & -rest)]!;
    for (const s of b.find(text, plan, spans)) if (plan.kinds.has(s.kind as BuiltinKind)) spans.push(s);
  }
  return spans.length < 2 ? spans : resolveOverlaps(spans);
}

/**
 * False when `detect` cannot find anything in a text of these candidates (no pre-filter of the
 * plan passed, and the plan has no custom detectors): such a text need not even be decoded.
 */
export function worthDetecting(candidates: Candidates, plan: DetectionPlan = DEFAULT_DETECTION): boolean {
  return plan.custom.length > 0 || (candidates & plan.enabled) !== 0;
}
