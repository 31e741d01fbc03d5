/**
 * What a statement returned, as the session recording keeps it: the column names and the first
 * rows, as the client received them (masked), up to a size per statement.
 *
 * Guarantees: bounded; once `maxBytes` of rows are kept, later rows are counted as cut and not
 * kept, so that a statement returning millions of rows costs the recording no more than its first
 * rows. A row is read into text as it comes, while its bytes are at hand (they are not copied),
 * and a row past the size is not read at all. Values are text (`valueText`): a value that is not
 * valid UTF-8 is kept as `\x` and its first 32 bytes in hex. Only the first result of a statement
 * is kept (a query string of several statements keeps its first result set).
 */

export interface RecordedResult {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | null)[])[];
  /** True when rows (or result sets) came that are not kept. */
  readonly truncated: boolean;
}

/** The default size of what a statement's recording keeps of its result. */
export const DEFAULT_RESULT_BYTES = 64 * 1024;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A protocol's reading of one kept row into the text of its values (`valueText`; null: SQL NULL);
 * undefined when it cannot.
 */
export type RowReader = (row: Buffer) => readonly (string | null)[] | undefined;

export class ResultSample {
  readonly #maxBytes: number;
  #columns: string[] | undefined;
  readonly #rows: (readonly (string | null)[])[] = [];
  #bytes = 0;
  #truncated = false;
  #sets = 0;

  constructor(maxBytes = DEFAULT_RESULT_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** A new result set begins, with these column names. */
  columns(names: readonly string[]): void {
    if (++this.#sets > 1) this.#truncated = true;
    else this.#columns = [...names];
  }

  /** A row of the result, as the protocol's bytes (its size counts), and how to read them; a row that cannot be read is left out. */
  row(bytes: Buffer, read: RowReader): void {
    if (this.#sets > 1 || this.#truncated) return;
    if (this.#bytes >= this.#maxBytes) {
      this.#truncated = true;
      return;
    }
    const values = read(bytes);
    if (values !== undefined) this.#rows.push(values);
    this.#bytes += bytes.length;
  }

  record(): RecordedResult | undefined {
    if (this.#columns === undefined && this.#rows.length === 0) return undefined;
    return { columns: this.#columns ?? [], rows: this.#rows, truncated: this.#truncated };
  }
}

/** The text of the value at `bytes[start, end)` as a recording keeps it: UTF-8, or `\x` and its first 32 bytes in hex. */
export function valueText(bytes: Buffer, start: number, end: number): string {
  let i = start;
  while (i < end && bytes[i]! < 0x80) i++;
  // ASCII, as most values are: read as it lies, without a view of its own or a decoder that may throw.
  if (i === end) return bytes.toString('latin1', start, end);
  try {
    return STRICT_UTF8.decode(bytes.subarray(start, end));
  } catch {
    return `\\x${bytes.toString('hex', start, Math.min(end, start + 32))}${end - start > 32 ? '…' : ''}`;
  }
}
