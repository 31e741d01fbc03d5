/**
 * Inline masking of what the target sends a PostgreSQL client: every message that carries data
 * is rewritten so that sensitive values (found by content, whatever the column is called) never
 * leave the gateway: DataRow, CopyData of COPY TO, ErrorResponse and NoticeResponse fields,
 * NotificationResponse payloads, ParameterStatus values.
 *
 * Guarantees:
 * - Pure: a whole message in, the message to send out (the same buffer when nothing changed, so
 *   that rows with nothing to find cost a scan and no copy).
 * - Type-aware for rows: values of the text-like types (text, varchar, bpchar, name, "char", json,
 *   jsonb, xml, unknown, record, and arrays of these) are masked; values of other types (numbers,
 *   dates, uuids, bytea, ...) pass as they are. Column types come from the RowDescription that
 *   describes the rows: the one just before them, or the one a Describe gave for the prepared
 *   statement or portal being executed (see `describe` and `use`).
 * - Text and binary formats alike: for the text-like types both are UTF-8 text, but jsonb (binary:
 *   a version byte, then text), and arrays and records, whose binary form is not text. A binary
 *   array or record of text is sent as NULL (fail closed: it is not parsed).
 * - A value whose masking says `null` (the `null` strategy) is sent as SQL NULL.
 * - A value that is not UTF-8 is masked as decoded with replacement characters.
 *
 * Known limits: masking is by content; a client that transforms values on the server (reverse(),
 * encode(..., 'base64'), JSON \u escapes) can take them past the detectors. Types from
 * extensions (citext, ...) have OIDs of their own and are not masked.
 */

import type { ColumnAction } from '../../policy/masking/columns.ts';
import type { SessionMasking } from '../../session/pipeline.ts';

/** Called with the kinds found in one message, for the record (never the values). */
export type OnFindings = (kinds: readonly string[]) => void;

const TEXT_TYPES = new Set([
  25, // text
  1043, // varchar
  1042, // bpchar
  19, // name
  18, // "char"
  705, // unknown
  142, // xml
]);
const JSON_TYPE = 114;
const JSONB = 3802;
/** Types whose binary form is not text: arrays of the text-like types, and records. */
const STRUCTURED_TYPES = new Set([
  2249, // record
  1009, // _text
  1015, // _varchar
  1014, // _bpchar
  1003, // _name
  1002, // _char
  199, // _json
  3807, // _jsonb
  143, // _xml
  2287, // _record
]);

/** What a column is to the masker. */
const Column = { Pass: 0, Text: 1, Jsonb: 2, Structured: 3, Json: 4 } as const;
type Column = (typeof Column)[keyof typeof Column];

const Type = {
  DataRow: 0x44,
  RowDescription: 0x54,
  CopyData: 0x64,
  CopyOutResponse: 0x48,
  ErrorResponse: 0x45,
  NoticeResponse: 0x4e,
  NotificationResponse: 0x41,
  ParameterStatus: 0x53,
} as const;

/** What stands for a value whose masking says NULL where NULL cannot be sent (inside a text). */
const FULL_MASK = Buffer.from('****');

/** COPY's text format for NULL. */
const NULL_IN_COPY = Buffer.from('\\N');

/** The message types `rewrite` may change: the relay hands over exactly these. */
export const MASKED_TYPES: readonly number[] = Object.values(Type);

/** Error and notice fields that name things (severity, code, position, source) rather than carry values. */
const PLAIN_FIELDS = new Set([0x53, 0x56, 0x43, 0x50, 0x70, 0x46, 0x4c, 0x52]); // S V C P p F L R

/** What the masker knows of each column of the rows to come. */
interface Columns {
  readonly kinds: Uint8Array;
  /** A column rule by name, where one matches. */
  readonly rules: readonly (ColumnAction | undefined)[];
}

export class PgMasker {
  readonly #mask: SessionMasking['text'];
  readonly #rule: SessionMasking['column'];
  readonly #onFindings: OnFindings;
  /** undefined: no description seen (every column is masked as text, by content). */
  #columns: Columns | undefined;
  readonly #described = new Map<string, Columns | undefined>();
  #copyBinary = false;
  #copyHeaderPending = false;

  constructor(masking: SessionMasking, onFindings: OnFindings = () => {}) {
    this.#mask = masking.text;
    this.#rule = masking.column;
    this.#onFindings = onFindings;
  }

  /** Remembers the row description a Describe gave for a statement ('S') or portal ('P'). */
  describe(key: string, rowDescription: Buffer | undefined): void {
    this.#described.set(key, rowDescription && this.#columnsOf(rowDescription));
  }

  /** The rows to come are those of this portal (or of the statement it was bound from). */
  use(portal: string, statement: string | undefined): void {
    const columns = this.#described.get(`P${portal}`) ?? (statement === undefined ? undefined : this.#described.get(`S${statement}`));
    if (columns !== undefined) this.#columns = columns;
  }

  forget(key: string): void {
    this.#described.delete(key);
  }

  /** The message to send instead of this one (type byte and length included), or undefined to send it as it came. */
  rewrite(type: number, body: Buffer): Buffer | undefined {
    switch (type) {
      case Type.RowDescription:
        this.#columns = this.#columnsOf(body);
        return undefined;
      case Type.DataRow:
        return this.#dataRow(body);
      case Type.CopyOutResponse:
        this.#copyBinary = body[0] === 1;
        this.#copyHeaderPending = this.#copyBinary;
        return undefined;
      case Type.CopyData:
        return this.#copyBinary ? this.#binaryCopy(body) : this.#copyText(body);
      case Type.ErrorResponse:
      case Type.NoticeResponse:
        return this.#fields(type, body);
      case Type.NotificationResponse: {
        // int32 process id, channel\0, payload\0
        const channelEnd = body.indexOf(0, 4);
        if (channelEnd < 0) return undefined;
        return this.#whole(type, body, channelEnd + 1, true);
      }
      case Type.ParameterStatus: {
        const nameEnd = body.indexOf(0);
        if (nameEnd < 0) return undefined;
        return this.#whole(type, body, nameEnd + 1, true);
      }
      default:
        return undefined;
    }
  }

  #columnsOf(rowDescription: Buffer): Columns | undefined {
    if (rowDescription.length < 2) return undefined;
    const count = rowDescription.readUInt16BE(0);
    const kinds = new Uint8Array(count);
    const rules: (ColumnAction | undefined)[] = [];
    let off = 2;
    for (let i = 0; i < count; i++) {
      const nameEnd = rowDescription.indexOf(0, off);
      if (nameEnd < 0 || nameEnd + 19 > rowDescription.length) return undefined;
      const typeOid = rowDescription.readUInt32BE(nameEnd + 7);
      kinds[i] = TEXT_TYPES.has(typeOid)
        ? Column.Text
        : typeOid === JSON_TYPE
          ? Column.Json
          : typeOid === JSONB
            ? Column.Jsonb
            : STRUCTURED_TYPES.has(typeOid)
              ? Column.Structured
              : Column.Pass;
      rules.push(this.#rule(rowDescription.toString('utf8', off, nameEnd)));
      off = nameEnd + 19;
    }
    return { kinds, rules };
  }

  #dataRow(body: Buffer): Buffer | undefined {
    if (body.length < 2) return undefined;
    const count = body.readUInt16BE(0);
    const columns = this.#columns;
    let parts: Buffer[] | undefined;
    let copied = 2;
    let off = 2;
    const found: string[] = [];
    for (let i = 0; i < count; i++) {
      if (off + 4 > body.length) return undefined; // malformed: the client's driver will say so
      const length = body.readInt32BE(off);
      const start = off + 4;
      if (length < 0) {
        off = start;
        continue;
      }
      const end = start + length;
      if (end > body.length) return undefined;
      const kind = (columns === undefined ? Column.Text : (columns.kinds[i] ?? Column.Text)) as Column;
      const rule = columns?.rules[i];
      let replacement: Buffer | null | undefined;
      if (rule !== undefined) replacement = byRule(rule, kind, body.subarray(start, end));
      else if (kind !== Column.Pass) replacement = this.#value(kind, body.subarray(start, end), found);
      if (replacement !== undefined) {
        parts ??= [];
        parts.push(body.subarray(copied, off), lengthPrefixed(replacement));
        copied = end;
      }
      off = end;
    }
    if (found.length > 0) this.#onFindings(found);
    if (parts === undefined) return undefined;
    parts.push(body.subarray(copied));
    return message(Type.DataRow, Buffer.concat([body.subarray(0, 2), ...parts]));
  }

  /** undefined: unchanged; null: send SQL NULL; else the new value bytes. */
  #value(kind: Column, bytes: Buffer, found: string[]): Buffer | null | undefined {
    if (kind === Column.Jsonb && bytes[0] === 1) {
      const masked = this.#text(bytes.subarray(1), found);
      return masked === undefined || masked === null ? masked : Buffer.concat([bytes.subarray(0, 1), masked]);
    }
    if (kind === Column.Structured && bytes.length > 0 && bytes[0] === 0) {
      // A binary array or record: not parsed, so not sent.
      found.push('unreadable-binary');
      return null;
    }
    return this.#text(bytes, found);
  }

  #text(bytes: Buffer, found: string[]): Buffer | null | undefined {
    if (bytes.length === 0) return undefined;
    const result = this.#mask(bytes.toString('utf8'));
    if (result.findings.length > 0) found.push(...result.findings);
    if (!result.changed) return undefined;
    return result.text === null ? null : Buffer.from(result.text, 'utf8');
  }

  /** A message whose body from `from` on is text (up to a final NUL when `nulTerminated`). */
  #whole(type: number, body: Buffer, from: number, nulTerminated = false): Buffer | undefined {
    const end = nulTerminated ? body.length - 1 : body.length;
    if (end < from) return undefined;
    const found: string[] = [];
    const masked = this.#text(body.subarray(from, end), found);
    if (found.length > 0) this.#onFindings(found);
    if (masked === undefined) return undefined;
    const text = masked ?? FULL_MASK;
    return message(type, Buffer.concat([body.subarray(0, from), text, body.subarray(end)]));
  }

  /**
   * A row of COPY in text or csv: each field on its own (split at tabs, commas and the line
   * end, which no mask contains), so that numbers in neighbouring columns are not read as one.
   */
  #copyText(body: Buffer): Buffer | undefined {
    const found: string[] = [];
    let out: Buffer[] | undefined;
    let copied = 0;
    let start = 0;
    for (let i = 0; i <= body.length; i++) {
      const b = body[i];
      if (i < body.length && b !== 0x09 && b !== 0x2c && b !== 0x0a) continue;
      const masked = i > start ? this.#text(body.subarray(start, i), found) : undefined;
      if (masked !== undefined) {
        out ??= [];
        out.push(body.subarray(copied, start), masked ?? NULL_IN_COPY);
        copied = i;
      }
      start = i + 1;
    }
    if (found.length > 0) this.#onFindings(found);
    if (out === undefined) return undefined;
    out.push(body.subarray(copied));
    return message(Type.CopyData, Buffer.concat(out));
  }

  #fields(type: number, body: Buffer): Buffer | undefined {
    const out: Buffer[] = [];
    const found: string[] = [];
    let changed = false;
    let off = 0;
    while (off < body.length && body[off] !== 0) {
      const code = body[off]!;
      const end = body.indexOf(0, off + 1);
      if (end < 0) return undefined;
      const value = body.subarray(off + 1, end);
      const masked = PLAIN_FIELDS.has(code) ? undefined : this.#text(value, found);
      if (masked === undefined) out.push(body.subarray(off, end + 1));
      else {
        changed = true;
        out.push(Buffer.from([code]), masked ?? FULL_MASK, Buffer.from([0]));
      }
      off = end + 1;
    }
    if (found.length > 0) this.#onFindings(found);
    if (!changed) return undefined;
    out.push(Buffer.from([0]));
    return message(type, Buffer.concat(out));
  }

  /** COPY … TO STDOUT (FORMAT binary): each field is masked as text when it reads as text. */
  #binaryCopy(body: Buffer): Buffer | undefined {
    let off = 0;
    if (this.#copyHeaderPending) {
      // PGCOPY\n\377\r\n\0, flags int32, header extension length int32 and the extension.
      if (body.length < 19) return undefined;
      off = 19 + body.readUInt32BE(15);
      this.#copyHeaderPending = false;
    }
    if (off + 2 > body.length) return undefined;
    const count = body.readInt16BE(off);
    if (count < 0) return undefined; // the trailer
    const parts: Buffer[] = [body.subarray(0, off + 2)];
    const found: string[] = [];
    let changed = false;
    off += 2;
    for (let i = 0; i < count; i++) {
      if (off + 4 > body.length) return undefined;
      const length = body.readInt32BE(off);
      const start = off + 4;
      const end = length < 0 ? start : start + length;
      if (end > body.length) return undefined;
      const value = body.subarray(start, end);
      const masked = length > 0 && isUtf8(value) ? this.#text(value, found) : undefined;
      if (masked === undefined) parts.push(body.subarray(off, end));
      else {
        changed = true;
        parts.push(lengthPrefixed(masked));
      }
      off = end;
    }
    if (found.length > 0) this.#onFindings(found);
    if (!changed) return undefined;
    parts.push(body.subarray(off));
    return message(Type.CopyData, Buffer.concat(parts));
  }
}

/** A column rule's value: `never` leaves it, `null` makes it NULL, `mask` masks all of it. */
function byRule(rule: ColumnAction, kind: Column, value: Buffer): Buffer | null | undefined {
  if (rule.action === 'never') return undefined;
  // A masked number or date would not read as one: such values go as NULL.
  if (rule.action === 'null' || kind === Column.Pass || kind === Column.Structured) return null;
  if (kind === Column.Jsonb || kind === Column.Json) {
    // Still JSON: the mask as a JSON string (binary jsonb keeps its version byte).
    const binary = kind === Column.Jsonb && value[0] === 1;
    const masked = Buffer.from(JSON.stringify(rule.apply(value.subarray(binary ? 1 : 0).toString('utf8'))), 'utf8');
    return binary ? Buffer.concat([value.subarray(0, 1), masked]) : masked;
  }
  return Buffer.from(rule.apply(value.toString('utf8')), 'utf8');
}

function lengthPrefixed(value: Buffer | null): Buffer {
  const out = Buffer.allocUnsafe(4 + (value?.length ?? 0));
  out.writeInt32BE(value === null ? -1 : value.length, 0);
  value?.copy(out, 4);
  return out;
}

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeUInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Buffer): boolean {
  try {
    STRICT_UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
