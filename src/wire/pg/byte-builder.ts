// Test-only: builds PostgreSQL messages byte by byte, independently of encode.ts,
// so decoder tests are not circular (after node-postgres' testing/test-buffers.ts).
// Not exported from index.ts.

import { Buffer } from 'node:buffer';
import type { Frame } from './framer.ts';

export class Bytes {
  readonly #parts: Buffer[] = [];

  byte(v: number): this {
    this.#parts.push(Buffer.from([v]));
    return this;
  }
  char(c: string): this {
    return this.byte(c.charCodeAt(0));
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.#parts.push(b);
    return this;
  }
  uint16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.#parts.push(b);
    return this;
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.#parts.push(b);
    return this;
  }
  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.#parts.push(b);
    return this;
  }
  /** UTF-8 text, no terminator. */
  string(s: string): this {
    this.#parts.push(Buffer.from(s, 'utf8'));
    return this;
  }
  cstring(s: string): this {
    return this.string(s).byte(0);
  }
  raw(b: Uint8Array | readonly number[]): this {
    this.#parts.push(Buffer.from(b));
    return this;
  }
  /** Just the bytes added. */
  body(): Buffer {
    return Buffer.concat(this.#parts);
  }
  /** A typed message: type byte, int32 length (counting itself), body. */
  message(type: string): Buffer {
    const body = this.body();
    const header = Buffer.alloc(5);
    header[0] = type.charCodeAt(0);
    header.writeUInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  }
  /** An untyped startup packet: int32 length (counting itself), body. */
  startup(): Buffer {
    const body = this.body();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length + 4);
    return Buffer.concat([header, body]);
  }
}

export function bytes(): Bytes {
  return new Bytes();
}

/** A Frame for a whole typed message, without going through the framer. */
export function typedFrame(raw: Buffer): Frame {
  return { type: raw[0] ?? 0, body: raw.subarray(5), raw };
}

/** A Frame for a whole startup packet, without going through the framer. */
export function startupFrame(raw: Buffer): Frame {
  return { type: 0, body: raw.subarray(4), raw };
}
