import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { bytes } from './byte-builder.ts';
import { Framer, FramingError, type Frame } from './framer.ts';

const MAX = 1 << 20;

/** Several typed messages of different sizes, back to back. */
const stream = Buffer.concat([
  bytes().cstring('select 1').message('Q'),
  bytes().message('S'),
  bytes().raw(Buffer.alloc(300, 7)).message('d'),
  bytes().message('c'),
  bytes().cstring('p').int32(0).message('E'),
]);

function plain(frames: Frame[]): { type: number; body: string; raw: string }[] {
  return frames.map((f) => ({ type: f.type, body: f.body.toString('hex'), raw: f.raw.toString('hex') }));
}

function feed(framer: Framer, chunks: Buffer[]): Frame[] {
  return chunks.flatMap((c) => framer.push(c));
}

function throwsFraming(fn: () => unknown, code: FramingError['code']): void {
  assert.throws(fn, (e: unknown) => e instanceof FramingError && e.code === code);
}

describe('Framer (typed)', () => {
  const whole = plain(new Framer({ maxMessageLength: MAX }).push(stream));

  it('frames a whole chunk', () => {
    assert.equal(whole.length, 5);
    assert.deepEqual(
      whole.map((f) => String.fromCharCode(f.type)),
      ['Q', 'S', 'd', 'c', 'E'],
    );
    assert.equal(whole[0]?.body, Buffer.from('select 1\0').toString('hex'));
  });

  it('gives the same frames for every split point', () => {
    for (let i = 0; i <= stream.length; i++) {
      const framer = new Framer({ maxMessageLength: MAX });
      const frames = feed(framer, [stream.subarray(0, i), stream.subarray(i)]);
      assert.deepEqual(plain(frames), whole, `split at ${i}`);
      assert.equal(framer.buffered, 0);
    }
  });

  it('gives the same frames for every pair of split points', () => {
    for (let i = 0; i <= stream.length; i += 3) {
      for (let j = i; j <= stream.length; j += 5) {
        const framer = new Framer({ maxMessageLength: MAX });
        const frames = feed(framer, [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        assert.deepEqual(plain(frames), whole, `split at ${i}, ${j}`);
      }
    }
  });

  it('handles one byte at a time, reporting what it holds', () => {
    const framer = new Framer({ maxMessageLength: MAX });
    const frames: Frame[] = [];
    for (let i = 0; i < stream.length; i++) {
      const before = framer.buffered;
      const got = framer.push(stream.subarray(i, i + 1));
      frames.push(...got);
      if (got.length === 0) assert.equal(framer.buffered, before + 1);
      else assert.equal(framer.buffered, 0);
    }
    assert.deepEqual(plain(frames), whole);
  });

  it('handles a header split 1 + 4 bytes', () => {
    const msg = bytes().cstring('x').message('Q');
    const framer = new Framer({ maxMessageLength: MAX });
    assert.deepEqual(framer.push(msg.subarray(0, 1)), []);
    assert.deepEqual(framer.push(msg.subarray(1, 5)), []);
    assert.equal(framer.buffered, 5);
    const frames = framer.push(msg.subarray(5));
    assert.deepEqual(plain(frames), plain([{ type: 0x51, body: msg.subarray(5), raw: msg }]));
  });

  it('is zero-copy for frames wholly inside a chunk', () => {
    const chunk = Buffer.concat([stream, stream.subarray(0, 3)]);
    const framer = new Framer({ maxMessageLength: MAX });
    const frames = framer.push(chunk);
    assert.equal(frames.length, 5);
    for (const f of frames) {
      assert.equal(f.raw.buffer, chunk.buffer);
      assert.equal(f.body.buffer, chunk.buffer);
    }
    assert.equal(frames[0]?.raw.byteOffset, chunk.byteOffset);
    assert.equal(framer.buffered, 3);
  });

  it('copies a spanning frame once into a buffer of its exact size', () => {
    const big = bytes().raw(Buffer.alloc(100_000, 1)).message('d');
    const framer = new Framer({ maxMessageLength: MAX });
    assert.deepEqual(framer.push(big.subarray(0, 10)), []);
    assert.deepEqual(framer.push(big.subarray(10, 50_000)), []);
    const [frame] = framer.push(big.subarray(50_000));
    assert.ok(frame);
    assert.equal(frame.raw.length, big.length);
    assert.equal(frame.raw.buffer.byteLength, big.length); // its own allocation, not a concat of chunks
    assert.ok(frame.raw.equals(big));
  });

  it('refuses an over-max length from the 5 header bytes alone', () => {
    for (const declared of [0x7fffffff, 0x80000000, 0xffffffff, MAX + 1]) {
      const header = Buffer.alloc(5);
      header[0] = 0x51;
      header.writeUInt32BE(declared, 1);
      const framer = new Framer({ maxMessageLength: MAX });
      throwsFraming(() => framer.push(header), 'message-too-large');
    }
  });

  it('refuses an over-max length split over chunks, before the body', () => {
    const framer = new Framer({ maxMessageLength: 100 });
    assert.deepEqual(framer.push(Buffer.from([0x44, 0x00])), []);
    throwsFraming(() => framer.push(Buffer.from([0x00, 0x00, 0x65])), 'message-too-large');
  });

  it('accepts exactly the maximum', () => {
    const msg = bytes().raw(Buffer.alloc(96)).message('d');
    assert.equal(new Framer({ maxMessageLength: 100 }).push(msg).length, 1);
  });

  it('refuses a length below 4 and stays failed', () => {
    for (const declared of [0, 1, 3]) {
      const framer = new Framer({ maxMessageLength: MAX });
      throwsFraming(() => framer.push(Buffer.from([0x51, 0, 0, 0, declared])), 'malformed-length');
      throwsFraming(() => framer.push(bytes().message('S')), 'malformed-length');
    }
  });

  it('validates its options', () => {
    assert.throws(() => new Framer({ maxMessageLength: 3 }), RangeError);
    assert.throws(() => new Framer({ maxMessageLength: 2 ** 31 }), RangeError);
    assert.throws(() => new Framer({ maxMessageLength: MAX, maxStartupLength: 7 }), RangeError);
  });
});

describe('Framer (startup mode)', () => {
  const ssl = bytes().int32(80877103).startup();
  const gss = bytes().int32(80877104).startup();
  const startup = bytes().int32(196608).cstring('user').cstring('alice').byte(0).startup();
  const password = bytes().cstring('secret').message('p');
  const query = bytes().cstring('select 1').message('Q');

  it('SSLRequest, StartupMessage and a typed p message in one chunk', () => {
    const framer = new Framer({ maxMessageLength: MAX, startup: true });
    const chunk = Buffer.concat([ssl, startup, password]);
    const frames = framer.push(chunk);
    assert.deepEqual(
      frames.map((f) => [f.type, f.raw.length]),
      [
        [0, 8],
        [0, startup.length],
        [0x70, password.length],
      ],
    );
    assert.ok(frames[1]?.body.equals(startup.subarray(4)));
    assert.ok(frames[2]?.body.equals(Buffer.from('secret\0')));
    assert.equal(framer.startup, false);
  });

  it('stays untyped after GSSENCRequest and CancelRequest', () => {
    const cancel = bytes().int32(80877102).int32(1).int32(2).startup();
    const framer = new Framer({ maxMessageLength: MAX, startup: true });
    const frames = framer.push(Buffer.concat([gss, cancel, ssl, startup, query]));
    assert.deepEqual(
      frames.map((f) => f.type),
      [0, 0, 0, 0, 0x51],
    );
  });

  it('gives the same frames for every split point', () => {
    const all = Buffer.concat([ssl, startup, password, query]);
    const whole = plain(new Framer({ maxMessageLength: MAX, startup: true }).push(all));
    assert.equal(whole.length, 4);
    for (let i = 0; i <= all.length; i++) {
      const framer = new Framer({ maxMessageLength: MAX, startup: true });
      assert.deepEqual(plain(feed(framer, [all.subarray(0, i), all.subarray(i)])), whole, `split at ${i}`);
    }
    const framer = new Framer({ maxMessageLength: MAX, startup: true });
    const oneByOne: Frame[] = [];
    for (let i = 0; i < all.length; i++) oneByOne.push(...framer.push(all.subarray(i, i + 1)));
    assert.deepEqual(plain(oneByOne), whole);
  });

  it('applies maxStartupLength (default 10000) to startup packets only', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(10001);
    throwsFraming(() => new Framer({ maxMessageLength: MAX, startup: true }).push(header), 'message-too-large');
    header.writeUInt32BE(10000);
    assert.deepEqual(new Framer({ maxMessageLength: MAX, startup: true }).push(header), []);
    header.writeUInt32BE(200);
    throwsFraming(() => new Framer({ maxMessageLength: 10, startup: true, maxStartupLength: 100 }).push(header), 'message-too-large');
    // after the StartupMessage the typed limit applies
    const framer = new Framer({ maxMessageLength: 10, startup: true });
    const typed = Buffer.from([0x51, 0, 0, 0, 11]);
    throwsFraming(() => framer.push(Buffer.concat([startup, typed])), 'message-too-large');
  });

  it('refuses a startup length below 8', () => {
    for (const declared of [0, 4, 7]) {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(declared);
      throwsFraming(() => new Framer({ maxMessageLength: MAX, startup: true }).push(header), 'malformed-length');
    }
  });
});

describe('Framer (property)', () => {
  it('any chunking of a valid stream yields the same frames', () => {
    const message = fc
      .tuple(fc.constantFrom(...'QPBDECSHXdcfFp'), fc.uint8Array({ maxLength: 40 }))
      .map(([t, b]) => bytes().raw(b).message(t));
    fc.assert(
      fc.property(fc.array(message, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (msgs, cuts) => {
        const all = Buffer.concat(msgs);
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of [...points, all.length]) {
          chunks.push(all.subarray(prev, p));
          prev = p;
        }
        const framer = new Framer({ maxMessageLength: MAX });
        const frames = feed(framer, chunks);
        assert.deepEqual(
          frames.map((f) => f.raw.toString('hex')),
          msgs.map((m) => m.toString('hex')),
        );
        assert.equal(framer.buffered, 0);
      }),
      { numRuns: 300 },
    );
  });
});
