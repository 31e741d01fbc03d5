/**
 * Inline masking of what the target sends a PostgreSQL client: every message that carries data
 * is rewritten so that sensitive values (found by content, whatever the column is called) never
 * leave the gateway: DataRow, CopyData of COPY TO, ErrorResponse and NoticeResponse fields,
 * NotificationResponse payloads, ParameterStatus values.
 *
 * Guarantees:
 * - A whole message in, what to send out: nothing new when nothing was found (a value whose bytes
 *   no detector could find anything in is not even decoded, so such rows cost one pass over their
 *   bytes); the message's own bytes, masked where they lie, when every mask has the length of its
 *   value (the `partial` masks of ASCII text); else one new message. No I/O, no state but the
 *   column types and the COPY format to come.
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

/** Called with how many values of a kind were masked, for the record (never the values). */
export type OnFindings = (kind: string, count: number) => void;

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
const FULL_MASK = '****';

/** COPY's text format for NULL. */
const NULL_IN_COPY = '\\N';

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

/**
 * What `rewrite` answers when it masked the message where it lies (every masked value kept its
 * length in bytes, as the `partial` strategy's masks of ASCII text do): the message's own bytes now
 * carry the masks, and are what to send.
 */
export const MASKED_IN_PLACE = Symbol('masked in place');

/** The message to send instead (type byte and length included), MASKED_IN_PLACE, or undefined: send it as it came. */
export type Rewrite = Buffer | typeof MASKED_IN_PLACE | undefined;

/**
 * One value of a message replaced by `value` (string: UTF-8 text; null: SQL NULL): the bytes
 * `[start, end)`, and the int32 length before them at `lengthAt` (-1: a value without one, in
 * COPY text, error fields and payloads). Bytes between `lengthAt + 4` and `start` are kept (the
 * version byte of binary jsonb).
 */
interface Edit {
  readonly lengthAt: number;
  readonly start: number;
  readonly end: number;
  readonly value: string | Buffer | null;
}

export class PgMasker {
  readonly #mask: SessionMasking['bytes'];
  readonly #copyFields: SessionMasking['fields'];
  /** Where the fields of a COPY line lie that may hold something: start, end, candidates (reused). */
  readonly #fieldBounds: number[] = [];
  readonly #rule: SessionMasking['column'];
  readonly #onFindings: OnFindings;
  /** undefined: no description seen (every column is masked as text, by content). */
  #columns: Columns | undefined;
  readonly #described = new Map<string, Columns | undefined>();
  #copyBinary = false;
  #copyHeaderPending = false;
  /**
   * How many findings of each kind (`#foundKinds[i]`, `#foundCounts[i]`) since the last `flush`:
   * a few kinds, looked up by identity, so that a row with findings costs no map update.
   */
  readonly #foundKinds: string[] = [];
  readonly #foundCounts: number[] = [];
  /** The edits of the message under way that change its length. */
  #edits: Edit[] = [];
  /** Whether a value of the message under way was masked where it lies. */
  #inPlace = false;

  constructor(masking: SessionMasking, onFindings: OnFindings = () => {}) {
    this.#mask = masking.bytes;
    this.#copyFields = masking.fields;
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

  /**
   * The message to send in this one's place, given its type and body. May change the body's
   * bytes (MASKED_IN_PLACE): the caller must not send this message's earlier bytes to anyone.
   */
  rewrite(type: number, body: Buffer): Rewrite {
    switch (type) {
      case Type.RowDescription:
        this.flush();
        this.#columns = this.#columnsOf(body);
        return undefined;
      case Type.DataRow:
        return this.#done(type, body, this.#dataRow(body));
      case Type.CopyOutResponse:
        this.flush();
        this.#copyBinary = body[0] === 1;
        this.#copyHeaderPending = this.#copyBinary;
        return undefined;
      case Type.CopyData:
        return this.#done(type, body, this.#copyBinary ? this.#binaryCopy(body) : this.#copyText(body));
      case Type.ErrorResponse:
      case Type.NoticeResponse:
        return this.#done(type, body, this.#fields(body));
      case Type.NotificationResponse: {
        // int32 process id, channel\0, payload\0
        const channelEnd = body.indexOf(0, 4);
        if (channelEnd < 0) return undefined;
        return this.#done(type, body, this.#whole(body, channelEnd + 1));
      }
      case Type.ParameterStatus: {
        const nameEnd = body.indexOf(0);
        if (nameEnd < 0) return undefined;
        return this.#done(type, body, this.#whole(body, nameEnd + 1));
      }
      default:
        return undefined;
    }
  }

  /**
   * The end of a message: its edits make the answer. `readable`
   * false: the message was malformed, and goes as it came (its driver will say so).
   */
  #done(type: number, body: Buffer, readable: boolean): Rewrite {
    const inPlace = this.#inPlace;
    this.#inPlace = false;
    if (this.#edits.length === 0) return inPlace ? MASKED_IN_PLACE : undefined;
    const edits = this.#edits;
    this.#edits = [];
    return readable ? spliced(type, body, edits) : inPlace ? MASKED_IN_PLACE : undefined;
  }

  /**
   * Hands what was found since the last call to `onFindings`, a call per kind. The masker calls it
   * when a result begins; its owner calls it last, before the session's record is closed.
   */
  flush(): void {
    for (let i = 0; i < this.#foundKinds.length; i++) this.#onFindings(this.#foundKinds[i]!, this.#foundCounts[i]!);
    this.#foundKinds.length = 0;
    this.#foundCounts.length = 0;
  }

  #found(kind: string): void {
    const kinds = this.#foundKinds;
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i] !== kind) continue;
      this.#foundCounts[i]!++;
      return;
    }
    kinds.push(kind);
    this.#foundCounts.push(1);
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

  #dataRow(body: Buffer): boolean {
    if (body.length < 2) return false;
    const count = (body[0]! << 8) | body[1]!;
    const kinds = this.#columns?.kinds;
    const rules = this.#columns?.rules;
    let off = 2;
    for (let i = 0; i < count; i++) {
      if (off + 4 > body.length) return false;
      // int32, big-endian (read by hand: this runs for every column of every row)
      const length = (body[off]! << 24) | (body[off + 1]! << 16) | (body[off + 2]! << 8) | body[off + 3]!;
      const start = off + 4;
      const end = length < 0 ? start : start + length;
      if (end > body.length) return false;
      const kind = (kinds === undefined ? Column.Text : (kinds[i] ?? Column.Text)) as Column;
      const rule = rules?.[i];
      if (length < 0) {
        // SQL NULL: nothing to mask.
      } else if (rule !== undefined) {
        const value = byRule(rule, kind, body.subarray(start, end));
        if (value !== undefined) this.#edits.push({ lengthAt: off, start, end, value });
      } else if (kind === Column.Jsonb && length > 0 && body[start] === 1) {
        this.#value(body, off, start + 1, end); // the version byte stays
      } else if (kind === Column.Structured && length > 0 && body[start] === 0) {
        // A binary array or record: not parsed, so not sent.
        this.#found('unreadable-binary');
        this.#edits.push({ lengthAt: off, start, end, value: null });
      } else if (kind !== Column.Pass) {
        this.#value(body, off, start, end);
      }
      off = end;
    }
    return true;
  }

  /**
   * Masks the UTF-8 text at `body[start, end)`: where it lies when the mask has its length, else
   * as an edit (null for SQL NULL; `nullText` where NULL cannot be sent).
   */
  #value(body: Buffer, lengthAt: number, start: number, end: number, nullText?: string, candidates?: number): void {
    if (end <= start) return;
    const result = this.#mask(body, start, end, candidates);
    if (result === undefined) return;
    for (let i = 0; i < result.findings.length; i++) this.#found(result.findings[i]!);
    if ('written' in result) {
      this.#inPlace = true;
      return;
    }
    if (!result.changed) return;
    const text = result.text ?? nullText ?? null;
    if (text !== null && Buffer.byteLength(text) === end - start) {
      body.write(text, start);
      this.#inPlace = true;
      return;
    }
    // SQL NULL drops every byte of the value (the version byte of binary jsonb too).
    this.#edits.push({ lengthAt, start: text === null ? lengthAt + 4 : start, end, value: text });
  }

  /** A message whose body from `from` to its final NUL is text. */
  #whole(body: Buffer, from: number): boolean {
    if (body.length - 1 < from) return false;
    this.#value(body, -1, from, body.length - 1, FULL_MASK);
    return true;
  }

  /**
   * A row of COPY in text or csv: each field on its own (split at tabs, commas and the line
   * end, which no mask contains), so that numbers in neighbouring columns are not read as one.
   */
  #copyText(body: Buffer): boolean {
    // One pass finds the fields and what may be in each; only those are looked at again.
    const bounds = this.#fieldBounds;
    const fields = this.#copyFields(body, 0, body.length, bounds);
    for (let i = 0; i < fields; i++) this.#value(body, -1, bounds[3 * i]!, bounds[3 * i + 1]!, NULL_IN_COPY, bounds[3 * i + 2]!);
    return true;
  }

  #fields(body: Buffer): boolean {
    let off = 0;
    while (off < body.length && body[off] !== 0) {
      const code = body[off]!;
      const end = body.indexOf(0, off + 1);
      if (end < 0) return false;
      if (!PLAIN_FIELDS.has(code)) this.#value(body, -1, off + 1, end, FULL_MASK);
      off = end + 1;
    }
    return true;
  }

  /** COPY … TO STDOUT (FORMAT binary): each field is masked as text when it reads as text. */
  #binaryCopy(body: Buffer): boolean {
    let off = 0;
    if (this.#copyHeaderPending) {
      // PGCOPY\n\377\r\n\0, flags int32, header extension length int32 and the extension.
      if (body.length < 19) return false;
      off = 19 + body.readUInt32BE(15);
      this.#copyHeaderPending = false;
    }
    if (off + 2 > body.length) return false;
    const count = body.readInt16BE(off);
    if (count < 0) return true; // the trailer
    off += 2;
    for (let i = 0; i < count; i++) {
      if (off + 4 > body.length) return false;
      const length = body.readInt32BE(off);
      const start = off + 4;
      const end = length < 0 ? start : start + length;
      if (end > body.length) return false;
      if (length > 0 && isUtf8(body.subarray(start, end))) this.#value(body, off, start, end);
      off = end;
    }
    return true;
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

/** The message `type` with `body`'s values replaced as `edits` (in body order) say, in one buffer. */
function spliced(type: number, body: Buffer, edits: readonly Edit[]): Buffer {
  let length = 4 + body.length;
  for (const e of edits) length += byteLength(e.value) - (e.end - e.start);
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = type;
  out.writeUInt32BE(length, 1);
  let at = 5;
  let copied = 0;
  for (const e of edits) {
    if (e.lengthAt >= 0) {
      at += body.copy(out, at, copied, e.lengthAt);
      at = out.writeInt32BE(e.value === null ? -1 : e.start - e.lengthAt - 4 + byteLength(e.value), at);
      copied = e.lengthAt + 4;
    }
    at += body.copy(out, at, copied, e.start);
    if (typeof e.value === 'string') at += out.write(e.value, at);
    else if (e.value !== null) at += e.value.copy(out, at);
    copied = e.end;
  }
  body.copy(out, at, copied);
  return out;
}

/** The message `type` with `body` as it is now. */
export const framed = (type: number, body: Buffer): Buffer => spliced(type, body, []);

const byteLength = (value: string | Buffer | null): number =>
  value === null ? 0 : typeof value === 'string' ? Buffer.byteLength(value) : value.length;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Buffer): boolean {
  try {
    STRICT_UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
