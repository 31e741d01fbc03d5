/**
 * Reads whole frames from a socket one at a time, for the login phases of both sides where the
 * conversation is strictly request/response. The proxy phase does not use it: it handles
 * chunks as they arrive, for speed and backpressure.
 */

import type { Socket } from 'node:net';
import { GatewayError } from '../../core/index.ts';
import { Framer, FramingError, type Frame } from '../../wire/pg/index.ts';

export class FrameReader {
  readonly socket: Socket;
  readonly framer: Framer;
  readonly #frames: Frame[] = [];
  #waiter: { resolve: (frame: Frame) => void; reject: (error: unknown) => void } | undefined;
  #failure: unknown;
  readonly #onData = (chunk: Buffer) => {
    try {
      this.#frames.push(...this.framer.push(chunk));
    } catch (error) {
      this.#fail(error instanceof FramingError ? framingError(error) : error);
      return;
    }
    this.#wake();
  };
  readonly #onEnd = () => this.#fail(new PeerClosed());
  readonly #onError = (error: Error) => this.#fail(error);

  constructor(socket: Socket, framer: Framer) {
    this.socket = socket;
    this.framer = framer;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onError);
  }

  next(timeoutMs: number, what: string): Promise<Frame> {
    const ready = this.#frames.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new GatewayError('protocol.malformed', `timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiter = {
        resolve: (frame) => (clearTimeout(timer), resolve(frame)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
  }

  /** Frames already read but not yet taken. */
  get queued(): number {
    return this.#frames.length;
  }

  /** Stops reading; returns the frames read but not taken, in order. */
  detach(): Frame[] {
    this.socket.off('data', this.#onData);
    this.socket.off('end', this.#onEnd);
    this.socket.off('close', this.#onEnd);
    this.socket.off('error', this.#onError);
    return this.#frames.splice(0);
  }

  #wake(): void {
    const waiter = this.#waiter;
    const frame = waiter && this.#frames.shift();
    if (waiter && frame) {
      this.#waiter = undefined;
      waiter.resolve(frame);
    }
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }
}

/** The peer closed the connection while a frame was awaited. */
export class PeerClosed extends Error {
  override name = 'PeerClosed';
  constructor() {
    super('connection closed by the peer');
  }
}

export function framingError(error: FramingError): GatewayError {
  return new GatewayError(error.code === 'message-too-large' ? 'protocol.message-too-large' : 'protocol.malformed', error.message, {
    cause: error,
  });
}

/** Reads exactly one byte that arrives alone (the answer to SSLRequest/GSSENCRequest). */
export function readSingleByte(socket: Socket, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      cleanup();
      socket.pause();
      // Bytes after the answer would be read as if they came over TLS: refuse (CVE-2021-23222).
      if (chunk.length !== 1) reject(new GatewayError('target.unavailable', 'the target sent unexpected data after its TLS answer'));
      else resolve(chunk[0]!);
    };
    const onClose = () => (cleanup(), reject(new PeerClosed()));
    const onError = (error: Error) => (cleanup(), reject(error));
    const timer = setTimeout(
      () => (cleanup(), reject(new GatewayError('target.unavailable', 'timed out waiting for the TLS answer'))),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}
