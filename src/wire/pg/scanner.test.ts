import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { bytes } from './byte-builder.ts';
import { Framer, FramingError } from './framer.ts';
import { FrameScanner } from './scanner.ts';

const MAX = 1 << 20;
const D = 0x44;
const C = 0x43;
const Z = 0x5a;

const stream = Buffer.concat([
  bytes().int16(1).int32(3).raw(Buffer.from('abc')).message('D'),
  bytes().int16(1).int32(-1).message('D'),
  bytes().cstring('SELECT 2').message('C'),
  bytes().raw(Buffer.alloc(300, 7)).message('d'),
  bytes().raw(Buffer.from('I')).message('Z'),
]);

interface Seen {
  type: number;
  /** Where the message began in the whole stream, from its length field. */
  start: number;
  at: number;
  body: string | undefined;
}

/** Scans `chunks`, reporting message ends as offsets into the whole stream. */
function scan(scanner: FrameScanner, chunks: Buffer[]): Seen[] {
  const seen: Seen[] = [];
  let base = 0;
  for (const chunk of chunks) {
    scanner.scan(chunk, (type, end, body, length) =>
      seen.push({ type, start: base + end - length - 1, at: base + end, body: body?.toString('hex') }),
    );
    base += chunk.length;
  }
  return seen;
}

describe('FrameScanner', () => {
  const keep = [C, Z];
  const whole = scan(new FrameScanner({ maxMessageLength: MAX, keep }), [stream]);

  it('reports each message end, with bodies only of kept types', () => {
    assert.deepEqual(
      whole.map((s) => String.fromCharCode(s.type)),
      ['D', 'D', 'C', 'd', 'Z'],
    );
    assert.equal(whole[0]?.body, undefined);
    assert.equal(whole[2]?.body, Buffer.from('SELECT 2\0').toString('hex'));
    assert.equal(whole[4]?.body, Buffer.from('I').toString('hex'));
    assert.equal(whole.at(-1)?.at, stream.length);
  });

  it('agrees with the Framer on message ends and kept bodies', () => {
    const frames = new Framer({ maxMessageLength: MAX }).push(stream);
    let at = 0;
    const expected = frames.map((f) => ({
      type: f.type,
      start: at,
      at: (at += f.raw.length),
      body: keep.includes(f.type) ? f.body.toString('hex') : undefined,
    }));
    assert.deepEqual(whole, expected);
  });

  it('gives the same result for every pair of split points', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j += 7) {
        const scanner = new FrameScanner({ maxMessageLength: MAX, keep });
        assert.deepEqual(scan(scanner, [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]), whole, `split at ${i}, ${j}`);
        assert.equal(scanner.midMessage, false);
      }
    }
  });

  it('gives the same result one byte at a time, and knows when it is inside a message', () => {
    const scanner = new FrameScanner({ maxMessageLength: MAX, keep });
    const chunks = [...stream].map((b) => Buffer.from([b]));
    assert.deepEqual(scan(scanner, chunks), whole);
    scanner.scan(stream.subarray(0, 3), () => {});
    assert.equal(scanner.midMessage, true);
  });

  it('hands over a kept body without copying when it lies inside the chunk', () => {
    let body: Buffer | undefined;
    new FrameScanner({ maxMessageLength: MAX, keep }).scan(stream, (type, _end, b) => {
      if (type === C) body = b;
    });
    assert.equal(body?.buffer, stream.buffer);
  });

  it('refuses a declared length above the maximum from the header alone, and stays refused', () => {
    const scanner = new FrameScanner({ maxMessageLength: 1024, keep });
    const header = Buffer.from([D, 0x7f, 0xff, 0xff, 0xff]);
    assert.throws(
      () => scanner.scan(header, () => {}),
      (e: unknown) => e instanceof FramingError && e.code === 'message-too-large',
    );
    assert.throws(() => scanner.scan(stream, () => {}), FramingError);
  });

  it('refuses a length below 4', () => {
    const scanner = new FrameScanner({ maxMessageLength: MAX, keep });
    assert.throws(
      () => scanner.scan(Buffer.from([Z, 0, 0, 0, 3]), () => {}),
      (e: unknown) => e instanceof FramingError && e.code === 'malformed-length',
    );
  });

  it('agrees with the Framer on random streams split anywhere', () => {
    const message = fc.record({ type: fc.constantFrom(C, D, Z, 0x64, 0x45), body: fc.uint8Array({ maxLength: 200 }) });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 6 }), (messages, cuts) => {
        const all = Buffer.concat(messages.map((m) => bytes().raw(Buffer.from(m.body)).message(String.fromCharCode(m.type))));
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
        const chunks = [0, ...points].map((p, i, all_) => all.subarray(p, all_[i + 1] ?? all.length));
        const framed = new Framer({ maxMessageLength: MAX }).push(all);
        let at = 0;
        const expected = framed.map((f) => ({
          type: f.type,
          start: at,
          at: (at += f.raw.length),
          body: keep.includes(f.type) ? f.body.toString('hex') : undefined,
        }));
        assert.deepEqual(scan(new FrameScanner({ maxMessageLength: MAX, keep }), chunks), expected);
      }),
      { numRuns: 200 },
    );
  });
});
