// Splits a PostgreSQL v3 byte stream (either direction) into whole messages.
//
// Guarantees:
// - A declared length is checked (>= 4, <= the configured maximum) as soon as its
//   four bytes are known, before any of the body is buffered; a bad one throws
//   FramingError and the framer is dead from then on (every later push rethrows).
// - Frames that lie wholly inside a pushed chunk are subarrays of it (no copy).
//   A frame that spans chunks is copied once into a buffer of exactly its size,
//   allocated when its length is known (no repeated concatenation).
// - In startup mode (the client side of a server) packets are untyped; the framer
//   stays in startup mode after SSLRequest, GSSENCRequest and CancelRequest and
//   switches to typed mode after any other startup packet (a StartupMessage), so
//   typed messages arriving in the same chunk are framed correctly.
// Limits: the framer knows nothing about content. The single-byte 'S'/'N'/'E'
// answers to SSLRequest/GSSENCRequest are not frames; read them before feeding the
// server's stream here. After a TLS/GSS upgrade, feed decrypted bytes (a fresh
// framer in startup mode, or this one, which is still in startup mode).

import { Buffer } from 'node:buffer';
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from './messages.ts';

export interface Frame {
  /** Message type byte (e.g. 0x51 'Q'); 0 for a startup-phase (untyped) message. */
  readonly type: number;
  /** The payload after the header (type byte + int32 length). */
  readonly body: Buffer;
  /** The whole message as on the wire, header included. */
  readonly raw: Buffer;
}

export type FramingErrorCode = 'message-too-large' | 'malformed-length';

export class FramingError extends Error {
  readonly code: FramingErrorCode;
  /** The declared length that was refused. */
  readonly length: number;
  constructor(code: FramingErrorCode, length: number, message: string) {
    super(message);
    this.name = 'FramingError';
    this.code = code;
    this.length = length;
  }
}

export interface FramerOptions {
  /** Largest accepted length field of a typed message (the length counts itself, not the type byte). */
  maxMessageLength: number;
  /** Start in startup (untyped) mode: the client side of a server. */
  startup?: boolean;
  /** Largest accepted startup packet length; default 10000, like PostgreSQL. */
  maxStartupLength?: number;
}

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const DEFAULT_MAX_STARTUP_LENGTH = 10000;
/** Smallest startup packet: length + request code / protocol version. */
const MIN_STARTUP_LENGTH = 8;
const MAX_INT32 = 0x7fffffff;

function checkLimit(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min || value > MAX_INT32) {
    throw new RangeError(`Framer: ${name} must be an integer in [${min}, ${MAX_INT32}], got ${value}`);
  }
  return value;
}

export class Framer {
  readonly #maxMessageLength: number;
  readonly #maxStartupLength: number;
  #startup: boolean;
  /** Header bytes of a frame whose header is split across chunks. */
  readonly #header = Buffer.alloc(5);
  #headerFilled = 0;
  /** A frame whose length is known but whose bytes are not all here yet. */
  #partial: Buffer | null = null;
  #partialFilled = 0;
  #failed: FramingError | null = null;

  constructor(options: FramerOptions) {
    this.#maxMessageLength = checkLimit('maxMessageLength', options.maxMessageLength, 4);
    this.#maxStartupLength = checkLimit('maxStartupLength', options.maxStartupLength ?? DEFAULT_MAX_STARTUP_LENGTH, MIN_STARTUP_LENGTH);
    this.#startup = options.startup === true;
  }

  /** True while packets are framed as untyped startup packets. */
  get startup(): boolean {
    return this.#startup;
  }

  /** Bytes held that do not yet form a whole frame. */
  get buffered(): number {
    return this.#partial !== null ? this.#partialFilled : this.#headerFilled;
  }

  /** Feed a chunk; returns every complete frame. Throws FramingError on a bad declared length. */
  push(chunk: Buffer): Frame[] {
    if (this.#failed !== null) throw this.#failed;
    const frames: Frame[] = [];
    const end = chunk.length;
    let off = 0;

    // Finish what earlier chunks started.
    if (this.#headerFilled > 0) {
      const headerSize = this.#startup ? 4 : 5;
      const take = Math.min(headerSize - this.#headerFilled, end);
      chunk.copy(this.#header, this.#headerFilled, 0, take);
      this.#headerFilled += take;
      off = take;
      if (this.#headerFilled < headerSize) return frames;
      const total = this.#frameSize(this.#header, 0);
      const buf = Buffer.allocUnsafe(total);
      this.#header.copy(buf, 0, 0, headerSize);
      this.#headerFilled = 0;
      this.#partial = buf;
      this.#partialFilled = headerSize;
    }
    if (this.#partial !== null) {
      const buf = this.#partial;
      const take = Math.min(buf.length - this.#partialFilled, end - off);
      chunk.copy(buf, this.#partialFilled, off, off + take);
      this.#partialFilled += take;
      off += take;
      if (this.#partialFilled < buf.length) return frames;
      this.#partial = null;
      this.#partialFilled = 0;
      frames.push(this.#emit(buf));
    }

    // Whole frames straight out of the chunk, then keep the tail.
    while (off < end) {
      const headerSize = this.#startup ? 4 : 5;
      if (end - off < headerSize) {
        chunk.copy(this.#header, 0, off, end);
        this.#headerFilled = end - off;
        break;
      }
      const total = this.#frameSize(chunk, off);
      if (end - off >= total) {
        frames.push(this.#emit(chunk.subarray(off, off + total)));
        off += total;
        continue;
      }
      const buf = Buffer.allocUnsafe(total);
      chunk.copy(buf, 0, off, end);
      this.#partial = buf;
      this.#partialFilled = end - off;
      break;
    }
    return frames;
  }

  /** Validates the length field at `at` (the header start) and returns the whole frame's size. */
  #frameSize(src: Buffer, at: number): number {
    if (this.#startup) {
      const length = src.readUInt32BE(at);
      if (length < MIN_STARTUP_LENGTH) {
        this.#fail('malformed-length', length, `startup packet length ${length} is below ${MIN_STARTUP_LENGTH}`);
      }
      if (length > this.#maxStartupLength) {
        this.#fail('message-too-large', length, `startup packet length ${length} exceeds the maximum ${this.#maxStartupLength}`);
      }
      return length;
    }
    // Read unsigned: anything >= 2^31 is above every permitted maximum.
    const length = src.readUInt32BE(at + 1);
    const type = src[at] ?? 0;
    if (length < 4) {
      this.#fail('malformed-length', length, `message type 0x${type.toString(16)} declares length ${length} (< 4)`);
    }
    if (length > this.#maxMessageLength) {
      this.#fail(
        'message-too-large',
        length,
        `message type 0x${type.toString(16)} declares length ${length}, above the maximum ${this.#maxMessageLength}`,
      );
    }
    return length + 1;
  }

  #fail(code: FramingErrorCode, length: number, message: string): never {
    // Fail closed: once the stream is out of step nothing after it can be trusted.
    this.#partial = null;
    this.#partialFilled = 0;
    this.#headerFilled = 0;
    this.#failed = new FramingError(code, length, message);
    throw this.#failed;
  }

  #emit(raw: Buffer): Frame {
    if (this.#startup) {
      const code = raw.readUInt32BE(4);
      if (code !== SSL_REQUEST_CODE && code !== GSSENC_REQUEST_CODE && code !== CANCEL_REQUEST_CODE) {
        this.#startup = false;
      }
      return { type: 0, body: raw.subarray(4), raw };
    }
    return { type: raw[0] ?? 0, body: raw.subarray(5), raw };
  }
}
