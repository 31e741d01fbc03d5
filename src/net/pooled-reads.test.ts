import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { BufferPool, connectPooled, type PooledConnection } from './pooled-reads.ts';

describe('BufferPool', () => {
  it('hands out buffers of its size and reuses given-back ones', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    assert.equal(a.length, 1024);
    assert.equal(pool.idle, 0);
    pool.give(a);
    assert.equal(pool.idle, 1);
    assert.equal(pool.take(), a);
    assert.equal(pool.idle, 0);
  });

  it('keeps at most `max` idle buffers', () => {
    const pool = new BufferPool(16, 2);
    const buffers = [pool.take(), pool.take(), pool.take()];
    assert.equal(new Set(buffers).size, 3);
    for (const buffer of buffers) pool.give(buffer);
    assert.equal(pool.idle, 2);
  });

  it('with max 0 keeps nothing', () => {
    const pool = new BufferPool(16, 0);
    pool.give(pool.take());
    assert.equal(pool.idle, 0);
  });
});

/** A pool that counts what is out: every buffer taken and not yet given back. */
class CountingPool extends BufferPool {
  readonly taken = new Set<ArrayBufferLike>();
  out = 0;
  override take(): Buffer {
    const buffer = super.take();
    this.taken.add(buffer.buffer);
    this.out++;
    return buffer;
  }
  override give(buffer: Buffer): void {
    this.out--;
    super.give(buffer);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('connectPooled', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];

  before(async () => {
    server = createServer((socket) => accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const socket of accepted) socket.destroy();
    server.close();
    await once(server, 'close');
  });

  async function connectPair(pool: BufferPool): Promise<{ client: PooledConnection; peer: Socket }> {
    const count = accepted.length;
    const client = connectPooled({ host: '127.0.0.1', port }, pool);
    await once(client.socket, 'connect');
    while (accepted.length === count) await new Promise((resolve) => setImmediate(resolve));
    return { client, peer: accepted[accepted.length - 1]! };
  }

  // The socket takes the buffer for its next read in advance, so one buffer is always out.

  it("before takeOver, reads arrive as 'data' events holding copies, and the read buffer goes back", async () => {
    const pool = new CountingPool(64 * 1024, 4);
    const { client, peer } = await connectPair(pool);
    const chunks: Buffer[] = [];
    client.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    peer.write('hello');
    while (chunks.length === 0) await tick();
    peer.write('world');
    while (chunks.length === 1) await tick();
    assert.deepEqual(
      chunks.map((chunk) => chunk.toString()),
      ['hello', 'world'],
    );
    for (const chunk of chunks) assert.ok(!pool.taken.has(chunk.buffer), 'the event holds a copy, not pooled memory');
    assert.equal(pool.out, 1, 'only the buffer for the next read is out');
    assert.equal(pool.taken.size, 1, 'the same buffer served both reads');
    client.socket.destroy();
  });

  it('after takeOver, the handler gets the reads and release returns their buffers to the pool', async () => {
    const pool = new CountingPool(64 * 1024, 64);
    const { client, peer } = await connectPair(pool);
    const received: Buffer[] = [];
    const releases: (() => void)[] = [];
    let dataEvents = 0;
    client.socket.on('data', () => dataEvents++);
    client.takeOver((chunk, release) => {
      assert.ok(pool.taken.has(chunk.buffer), 'the handler gets a view of pooled memory');
      received.push(Buffer.from(chunk));
      releases.push(release);
    });

    const payload = Buffer.alloc(300_000, 'abcdefgh');
    peer.end(payload);
    await once(client.socket, 'end');
    assert.equal(dataEvents, 0);
    assert.deepEqual(Buffer.concat(received), payload);
    assert.ok(releases.length >= 5, 'a 300 kB stream takes several 64 KiB reads');
    // Nothing the handler still holds has gone back to the pool.
    assert.equal(pool.out, releases.length + 1);
    assert.equal(pool.idle, 0);
    for (const release of releases) release();
    assert.equal(pool.out, 1);
    assert.equal(pool.idle, releases.length);
    client.socket.destroy();
  });

  it('released buffers are reused for later reads', async () => {
    const pool = new CountingPool(64 * 1024, 4);
    const { client, peer } = await connectPair(pool);
    const texts: string[] = [];
    client.takeOver((chunk, release) => {
      texts.push(chunk.toString());
      release();
    });
    for (const text of ['one', 'two', 'three']) {
      peer.write(text);
      while (texts.length === 0 || texts.at(-1) !== text) await tick();
    }
    assert.deepEqual(texts.join(''), 'onetwothree');
    assert.ok(pool.taken.size <= 2, `${pool.taken.size} distinct buffers for three small reads`);
    client.socket.destroy();
  });
});
