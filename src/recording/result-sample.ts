/**
 * What a statement returned, as the session recording keeps it: the column names and the first
 * rows, as the client received them (masked), up to a size per statement.
 *
 * Guarantees: bounded; once `maxBytes` of rows are kept, later rows are counted as cut and not
 * kept, so that a statement returning millions of rows costs the recording no more than its first
 * rows. Rows are kept as the protocol's bytes (one copy each) and read into text only when the
 * statement is recorded, so that a stream makes no garbage per value. Values are text; a value
 * that is not valid UTF-8 is kept as `\x` and its first 32 bytes in hex. Only the first result of
 * a statement is kept (a query string of several statements keeps its first result set).
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

/** A protocol's reading of one kept row into its values (null: SQL NULL); undefined when it cannot. */
export type RowReader = (row: Uint8Array) => readonly (Uint8Array | null)[] | undefined;

export class ResultSample {
  readonly #maxBytes: number;
  #columns: string[] | undefined;
  readonly #rows: Buffer[] = [];
  #read: RowReader | undefined;
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

  /** A row of the result, as the protocol's bytes, and how to read them. */
  row(bytes: Uint8Array, read: RowReader): void {
    if (this.#sets > 1 || this.#truncated) return;
    if (this.#bytes >= this.#maxBytes) {
      this.#truncated = true;
      return;
    }
    this.#rows.push(Buffer.from(bytes));
    this.#bytes += bytes.length;
    this.#read = read;
  }

  record(): RecordedResult | undefined {
    if (this.#columns === undefined && this.#rows.length === 0) return undefined;
    const rows: (string | null)[][] = [];
    for (const bytes of this.#rows) {
      const values = this.#read?.(bytes);
      if (values !== undefined) rows.push(values.map((v) => (v === null ? null : text(v))));
    }
    return { columns: this.#columns ?? [], rows, truncated: this.#truncated };
  }
}

function text(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return `\\x${Buffer.from(bytes.subarray(0, 32)).toString('hex')}${bytes.length > 32 ? '…' : ''}`;
  }
}
