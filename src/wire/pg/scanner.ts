// Walks a stream of typed PostgreSQL messages without materializing them, for a relay that
// passes bytes on exactly as they came and needs to look at only a few message types (the
// target-to-client direction, where DataRow dominates).
//
// Guarantees: the same length checks as the Framer (>= 4, <= the maximum, checked before any
// body byte is kept), after which the scanner is dead; a message of a kept type is handed
// over whole, as a subarray of the chunk when it lies inside one, else copied once into a
// buffer of exactly its size; messages of other types cost a header read and a callback.
// Limits: typed messages only (no startup packets); callers that forward chunks as they
// arrive may forward part of a message, so anything they insert must go at a message end.

import { Buffer } from 'node:buffer';
import { FramingError } from './framer.ts';

export interface ScannerOptions {
  /** Largest accepted length field (the length counts itself, not the type byte). */
  readonly maxMessageLength: number;
  /** Type bytes whose bodies the caller wants to read. */
  readonly keep: readonly number[];
}

/**
 * Called at the end of each message: its type, the offset just past it in the current chunk,
 * its body if kept, and its length field (so the message began `length + 1` bytes before `end`,
 * possibly in an earlier chunk).
 */
export type MessageEnd = (type: number, end: number, body: Buffer | undefined, length: number) => void;

export class FrameScanner {
  readonly #maxMessageLength: number;
  readonly #keep = new Uint8Array(256);
  readonly #header = Buffer.alloc(5);
  #headerFilled = 0;
  #type = 0;
  /** Body bytes of the current message still to come; -1 while reading a header. */
  #remaining = -1;
  #length = 0;
  #body: Buffer | undefined;
  #bodyFilled = 0;
  #failed: FramingError | null = null;

  constructor(options: ScannerOptions) {
    this.#maxMessageLength = options.maxMessageLength;
    for (const type of options.keep) this.#keep[type] = 1;
  }

  /** True between the first and the last byte of a message. */
  get midMessage(): boolean {
    return this.#headerFilled > 0 || this.#remaining >= 0;
  }

  /** How many bytes of the message under way have been scanned (0 between messages). */
  get progress(): number {
    if (this.#remaining >= 0) return 1 + this.#length - this.#remaining;
    return this.#headerFilled;
  }

  scan(chunk: Buffer, onEnd: MessageEnd): void {
    if (this.#failed !== null) throw this.#failed;
    const end = chunk.length;
    let off = 0;
    while (off < end) {
      if (this.#remaining < 0) {
        let length: number;
        if (this.#headerFilled === 0 && end - off >= 5) {
          this.#type = chunk[off]!;
          length = chunk.readUInt32BE(off + 1);
          off += 5;
        } else {
          const take = Math.min(5 - this.#headerFilled, end - off);
          chunk.copy(this.#header, this.#headerFilled, off, off + take);
          this.#headerFilled += take;
          off += take;
          if (this.#headerFilled < 5) return;
          this.#type = this.#header[0]!;
          length = this.#header.readUInt32BE(1);
        }
        this.#headerFilled = 0;
        this.#check(length);
        this.#length = length;
        this.#remaining = length - 4;
        if (this.#keep[this.#type] === 1) {
          if (end - off >= this.#remaining) {
            this.#body = chunk.subarray(off, off + this.#remaining);
            this.#bodyFilled = this.#remaining;
          } else {
            this.#body = Buffer.allocUnsafe(this.#remaining);
            this.#bodyFilled = 0;
          }
        }
      }
      const take = Math.min(this.#remaining, end - off);
      if (this.#body !== undefined && this.#bodyFilled < this.#body.length) {
        chunk.copy(this.#body, this.#bodyFilled, off, off + take);
        this.#bodyFilled += take;
      }
      off += take;
      this.#remaining -= take;
      if (this.#remaining === 0) {
        const body = this.#body;
        this.#body = undefined;
        this.#remaining = -1;
        onEnd(this.#type, off, body, this.#length);
      }
    }
  }

  #check(length: number): void {
    if (length >= 4 && length <= this.#maxMessageLength) return;
    const type = `0x${this.#type.toString(16)}`;
    // Fail closed: once the stream is out of step nothing after it can be trusted.
    if (length < 4) this.#failed = new FramingError('malformed-length', length, `message type ${type} declares length ${length} (< 4)`);
    else if (length > this.#maxMessageLength) {
      this.#failed = new FramingError(
        'message-too-large',
        length,
        `message type ${type} declares length ${length}, above the maximum ${this.#maxMessageLength}`,
      );
    }
    if (this.#failed !== null) throw this.#failed;
  }
}
