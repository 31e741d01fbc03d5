/**
 * TCP connections whose reads land in pooled buffers. A relay that streams a large result
 * would otherwise allocate a fresh buffer for every read and leave it to the garbage collector,
 * so that memory grows with throughput until a collection runs; with a pool it stays flat.
 *
 * A buffer goes back to the pool only when its owner says so (after the write that carried its
 * bytes on has been flushed). Until a relay takes the reads over, each read is copied and
 * emitted as an ordinary 'data' event, so login code can use the socket like any other.
 */

import { connect, type Socket } from 'node:net';

export class BufferPool {
  readonly #size: number;
  readonly #max: number;
  readonly #free: Buffer[] = [];

  constructor(size: number, max: number) {
    this.#size = size;
    this.#max = max;
  }

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size);
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.#max) this.#free.push(buffer);
  }

  /** Buffers waiting for reuse. */
  get idle(): number {
    return this.#free.length;
  }
}

/** Receives a read; must call `release` exactly once, when nothing refers to `chunk` any more. */
export type PooledReadHandler = (chunk: Buffer, release: () => void) => void;

export interface PooledConnection {
  readonly socket: Socket;
  /** From now on every read goes to `handler` instead of a 'data' event. */
  takeOver(handler: PooledReadHandler): void;
}

export type Address = { readonly host: string; readonly port: number } | { readonly path: string };

export function connectPooled(address: Address, pool: BufferPool): PooledConnection {
  let handler: PooledReadHandler | undefined;
  const socket: Socket = connect({
    ...address,
    noDelay: true,
    onread: {
      buffer: () => pool.take(),
      callback: (length, read) => {
        const buffer = read as Buffer; // the buffer the pool gave
        if (handler) {
          handler(buffer.subarray(0, length), () => pool.give(buffer));
        } else {
          const copy = Buffer.from(buffer.subarray(0, length));
          pool.give(buffer);
          socket.emit('data', copy);
        }
        return true;
      },
    },
  });
  return {
    socket,
    takeOver(next) {
      handler = next;
    },
  };
}
