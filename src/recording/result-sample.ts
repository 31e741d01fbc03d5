/**
 * What a statement returned, as the session recording keeps it: the column names and the first
 * rows, as the client received them (masked), up to a size per statement.
 *
 * Guarantees: bounded; once `maxBytes` of values are kept, later rows are counted as cut and not
 * kept, so that a statement returning millions of rows costs the recording no more than its first
 * rows. Values are text; a value that is not valid UTF-8 is kept as `\x` and its first 32 bytes in
 * hex. Only the first result of a statement is kept (a query string of several statements keeps
 * its first result set).
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

export class ResultSample {
  readonly #maxBytes: number;
  #columns: string[] | undefined;
  readonly #rows: (string | null)[][] = [];
  #bytes = 0;
  #truncated = false;
  #sets = 0;

  constructor(maxBytes = DEFAULT_RESULT_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Whether the next row would be kept: the caller may skip decoding it otherwise. */
  get wantsRows(): boolean {
    return !this.#truncated && this.#bytes < this.#maxBytes;
  }

  /** A new result set begins, with these column names. */
  columns(names: readonly string[]): void {
    if (++this.#sets > 1) this.#truncated = true;
    else this.#columns = [...names];
  }

  /** A row of the result, as its values' bytes (null for SQL NULL). */
  row(values: readonly (Uint8Array | null)[]): void {
    if (this.#sets > 1) return;
    if (!this.wantsRows) {
      this.#truncated = true;
      return;
    }
    this.#rows.push(values.map((v) => (v === null ? null : text(v))));
    for (const v of values) this.#bytes += v === null ? 0 : v.length;
  }

  record(): RecordedResult | undefined {
    if (this.#columns === undefined && this.#rows.length === 0) return undefined;
    return { columns: this.#columns ?? [], rows: this.#rows, truncated: this.#truncated };
  }
}

function text(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return `\\x${Buffer.from(bytes.subarray(0, 32)).toString('hex')}${bytes.length > 32 ? '…' : ''}`;
  }
}
