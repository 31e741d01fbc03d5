import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_PAGER, pagedOutput, pagerCommand, type Terminal } from './pager.ts';

let dir: string;
/** A pager that keeps what it got, and the LESS it was given, in files. */
let fakePager: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-pager-'));
  fakePager = join(dir, 'pager.sh');
  await writeFile(fakePager, `#!/bin/sh\nprintf '%s' "$LESS" > "${dir}/less-env"\ncat > "${dir}/paged"\n`);
  await chmod(fakePager, 0o755);
});
after(() => rm(dir, { recursive: true, force: true }));

function terminal(rows = 10, columns = 80, isTTY = true): Terminal & { got: string } {
  return {
    isTTY,
    rows,
    columns,
    got: '',
    write(chunk: string, callback?: (error?: Error | null) => void) {
      this.got += chunk;
      callback?.();
      return true;
    },
  };
}

const lines = (n: number, prefix = 'line') => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}\n`).join('');
const paged = () => readFile(join(dir, 'paged'), 'utf8').catch(() => undefined);
const clear = () => rm(join(dir, 'paged'), { force: true });

describe('pagerCommand', () => {
  test('DRAWBRIDGE_PAGER, then PAGER, then less -FRX; empty or cat turns paging off', () => {
    assert.equal(pagerCommand({}), DEFAULT_PAGER);
    assert.equal(DEFAULT_PAGER, 'less -FRX');
    assert.equal(pagerCommand({ PAGER: 'most' }), 'most');
    assert.equal(pagerCommand({ PAGER: 'most', DRAWBRIDGE_PAGER: 'less -R' }), 'less -R');
    assert.equal(pagerCommand({ PAGER: '' }), undefined);
    assert.equal(pagerCommand({ PAGER: 'most', DRAWBRIDGE_PAGER: '' }), undefined);
    assert.equal(pagerCommand({ DRAWBRIDGE_PAGER: 'cat' }), undefined);
  });
});

describe('pagedOutput', () => {
  test('output that fits on the screen is written to the terminal; no pager starts', async () => {
    await clear();
    const tty = terminal(10);
    const out = pagedOutput({ terminal: tty, env: { PAGER: fakePager } });
    out.write(lines(9));
    await out.close();
    assert.equal(tty.got, lines(9));
    assert.equal(await paged(), undefined);
  });

  test('output longer than the screen goes through $PAGER, all of it, with LESS=FRX', async () => {
    await clear();
    const tty = terminal(10);
    const out = pagedOutput({ terminal: tty, env: { PAGER: fakePager } });
    out.write(lines(6, 'a'));
    out.write(lines(6, 'b'));
    out.write('no newline at the end');
    await out.close();
    assert.equal(tty.got, '');
    assert.equal(await paged(), `${lines(6, 'a')}${lines(6, 'b')}no newline at the end`);
    assert.equal(await readFile(join(dir, 'less-env'), 'utf8'), 'FRX');
    assert.equal(out.quit, true, 'the pager has exited');
  });

  test('LESS of the environment is kept; DRAWBRIDGE_PAGER wins over PAGER; shell syntax runs through sh', async () => {
    await clear();
    const out = pagedOutput({
      terminal: terminal(3),
      env: { PAGER: 'false', DRAWBRIDGE_PAGER: `${fakePager} "with an argument"`, LESS: 'R' },
    });
    out.write(lines(5));
    await out.close();
    assert.equal(await paged(), lines(5));
    assert.equal(await readFile(join(dir, 'less-env'), 'utf8'), 'R');
  });

  test('long lines count as the screen lines they wrap to; colour escapes take no room', async () => {
    await clear();
    const wrapped = pagedOutput({ terminal: terminal(5, 80), env: { PAGER: fakePager } });
    wrapped.write(`${'x'.repeat(400)}\n`);
    await wrapped.close();
    assert.equal(await paged(), `${'x'.repeat(400)}\n`, '400 columns on an 80-column screen are 5 lines: paged');

    await clear();
    const tty = terminal(5, 80);
    const coloured = pagedOutput({ terminal: tty, env: { PAGER: fakePager } });
    const line = `${'\x1b[31mred\x1b[0m '.repeat(15)}\n`; // 60 columns, 195 characters
    coloured.write(line.repeat(4));
    await coloured.close();
    assert.equal(tty.got, line.repeat(4));
    assert.equal(await paged(), undefined);
  });

  test('never paged when turned off, when stdout is not a terminal, or when the pager is empty or cat', async () => {
    for (const [name, options, isTTY] of [
      ['--no-pager', { off: true, env: { PAGER: fakePager } }, true],
      ['not a TTY', { env: { PAGER: fakePager } }, false],
      ['PAGER=', { env: { PAGER: '' } }, true],
      ['DRAWBRIDGE_PAGER=cat', { env: { PAGER: fakePager, DRAWBRIDGE_PAGER: 'cat' } }, true],
    ] as const) {
      await clear();
      const tty = terminal(3, 80, isTTY);
      const out = pagedOutput({ ...options, terminal: tty });
      out.write(lines(50));
      await out.close();
      assert.equal(tty.got, lines(50), name);
      assert.equal(await paged(), undefined, name);
    }
  });

  test('a reader who quits early: the rest is dropped, `quit` turns true, and the output still ends', async () => {
    const out = pagedOutput({ terminal: terminal(3), env: { PAGER: 'head -c 100 > /dev/null' } });
    let written = 0;
    const chunk = `${'y'.repeat(1023)}\n`;
    // Like `audit export`: write while the reader takes it, stop when it is gone.
    while (!out.quit && written < 100_000) {
      if (!out.write(chunk)) await once(out, 'drain');
      written++;
    }
    await out.close();
    assert.equal(out.quit, true);
    assert.ok(written < 100_000, `stopped after ${written} chunks`);
  });

  test('a pager that cannot be started: said once on stderr, and the output is printed without it', async () => {
    const tty = terminal(3);
    const said: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((text: string) => said.push(text) > 0) as typeof process.stderr.write;
    try {
      const out = pagedOutput({ terminal: tty, env: { PAGER: join(dir, 'no-such-pager') } });
      out.write(lines(5));
      out.write(lines(5, 'more'));
      await out.close();
    } finally {
      process.stderr.write = write;
    }
    assert.equal(tty.got, `${lines(5)}${lines(5, 'more')}`);
    assert.equal(said.length, 1);
    assert.match(said[0]!, /cannot start the pager ".*no-such-pager" \(ENOENT\); printing without it/);
  });
});
