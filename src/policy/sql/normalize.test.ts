import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadModule, scanSync } from 'libpg-query';
import { statementShape } from './normalize.ts';
import { classify, initClassifier } from './pg-classifier.ts';

before(async () => {
  await loadModule();
  await initClassifier();
});

describe('statementShape: what it keeps apart', () => {
  const different: [string, string][] = [
    ["SELECT 'DROP TABLE x'", 'DROP TABLE x'],
    ['SELECT 1 /* ; DROP TABLE x */', 'SELECT 1 ; DROP TABLE x'],
    ['SELECT 1 -- ; DROP TABLE x', 'SELECT 1 ; DROP TABLE x'],
    ['SELECT * FROM "X"', 'SELECT * FROM x'],
    ['SELECT * FROM "x"', 'SELECT * FROM x'],
    ['SELECT * FROM "delete"', 'DELETE FROM x'],
    ['SELECT $$; DROP TABLE x; $$', 'SELECT 1; DROP TABLE x'],
    ["SELECT E'\\'; DROP TABLE x; --'", "SELECT ''; DROP TABLE x"],
    ['SELECT U&"d!0061ta" UESCAPE \'!\'', 'SELECT U&"d!0061ta" UESCAPE \'#\''],
    ["SELECT U&'\\0041'", "SELECT U&'\\0042'"],
    ["SELECT E'\\n'", "SELECT E'\\t'"],
    ['SELECT a ? b', "SELECT a 'x' b"],
    ['SELECT a <= b', 'SELECT a < = b'],
    ['SELECT 1abc', 'SELECT 1 abc'],
    ['SELECT Éa FROM t', 'SELECT éa FROM t'],
    ['SELECT $1', 'SELECT $2'],
    ["SELECT B'1'", "SELECT '1'"],
    ["SELECT X'1'", "SELECT '1'"],
    ["SELECT N'1'", "SELECT '1'"],
    ["SELECT N'1'", "SELECT n '1'"],
    ['DELETE FROM orders WHERE id = 1', 'DELETE FROM orders WHERE 1 = 1'],
    ['DELETE FROM orders WHERE id > 0 OR true', 'DELETE FROM orders WHERE id > 0 OR false'],
    ['EXPLAIN ANALYZE DELETE FROM t', 'EXPLAIN DELETE FROM t'],
    ["SELECT 'abc", "SELECT 'abd"],
    ['SELECT /* unterminated', 'SELECT'],
    ["SELECT 'a'\n-- comment\n'b'", "SELECT 'a'"],
  ];
  for (const [a, b] of different) {
    it(`${JSON.stringify(a)} ≠ ${JSON.stringify(b)}`, () => assert.notEqual(statementShape(a), statementShape(b)));
  }
});

describe('statementShape: what it folds together', () => {
  const same: [string, string][] = [
    ['SELECT * FROM t WHERE id = 1', 'select  *\n\tfrom T where ID=42'],
    ["SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'it''s'"],
    ["SELECT 'a'", "SELECT E'no backslash'"],
    ["SELECT 'a'", 'SELECT $$a$$'],
    ["SELECT 'a'", 'SELECT $tag$ $$ nested $$ $tag$'],
    ["SELECT 'a'", "SELECT 'a'\n'b'"],
    ['SELECT 1', 'SELECT 1.5e-3'],
    ['SELECT 1', 'SELECT 0x1F'],
    ['SELECT 1', 'SELECT 0o17'],
    ['SELECT 1', 'SELECT 0b101'],
    ['SELECT 1', 'SELECT 1_000_000'],
    ['SELECT 1', 'SELECT .5'],
    ["SELECT B'1'", "SELECT b'0101'"],
    ["SELECT X'1'", "SELECT x'ff'"],
    ['SELECT 1 /* c */ FROM t', 'SELECT 1 /* a /* nested */ b */ FROM t -- end'],
    ['SELECT a=-1', 'SELECT a = - 1'],
    ['SELECT a FROM t', 'SELECT a FROM t'],
  ];
  for (const [a, b] of same) {
    it(`${JSON.stringify(a)} ≡ ${JSON.stringify(b)}`, () => assert.equal(statementShape(a), statementShape(b)));
  }

  it('writes literals as ?, keeps structure, folds case and whitespace', () => {
    assert.equal(
      statementShape("SELECT abalance FROM pgbench_accounts WHERE aid = 48213 AND note = 'x' -- hi"),
      'select abalance from pgbench_accounts where aid = ? and note = ?',
    );
    assert.equal(statementShape('SELECT "Mixed" FROM "Orders"'), 'select "Mixed" from "Orders"');
    assert.equal(statementShape("SELECT jb ?| array['a'], 1::int"), 'select jb OP(?|) array [ ? ] , ? :: int');
  });

  it('marks an unterminated string or comment and keeps the rest verbatim', () => {
    assert.equal(statementShape("SELECT 'abc"), "select #ERR 'abc");
    assert.equal(statementShape('SELECT 1 /* x'), 'select ? #ERR /* x');
    assert.equal(statementShape('SELECT $a$ x'), 'select #ERR $a$ x');
    assert.equal(statementShape('SELECT "x'), 'select #ERR "x');
  });

  it('returns text that is not well-formed Unicode whole', () => {
    assert.equal(statementShape('SELECT \ud800'), '#RAW SELECT \ud800');
  });
});

// ---------------------------------------------------------------------------------------------
// The oracle: PostgreSQL's own scanner (libpg-query's scanSync) gives the token boundaries;
// the same mapping applied to its tokens must give the same shape as our lexer.

function shapeFromScan(sql: string): string {
  const tokens = scanSync(sql).tokens.filter((t) => !t.text.startsWith('--') && !t.text.startsWith('/*'));
  const units: string[] = [];
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!.text;
    const next = tokens[k + 1];
    const afterUescape = units[units.length - 1] === 'uescape';
    let unit: string;
    if (/^[nN]$/.test(t) && next && next.start === tokens[k]!.end && next.text.startsWith("'")) {
      unit = 'n?';
      k++;
    } else if (t.startsWith("'")) unit = afterUescape ? t : '?';
    else if (/^[eE]'/.test(t)) unit = t.includes('\\') ? t : '?';
    else if (/^[bB]'/.test(t)) unit = '?b';
    else if (/^[xX]'/.test(t)) unit = '?x';
    else if (/^[uU]&/.test(t) || t.startsWith('"') || /^\$\d/.test(t)) unit = t;
    else if (t.startsWith('$') && t.length > 1) unit = '?';
    else if (/^(\d|\.\d)/.test(t)) unit = '?';
    else if (/^[A-Za-z_\u0080-\uffff]/.test(t)) unit = t.replace(/[A-Z]+/g, (m) => m.toLowerCase());
    else if (t.includes('?')) unit = `OP(${t})`;
    else unit = t;
    units.push(unit);
  }
  return units.join(' ');
}

function scans(sql: string): boolean {
  try {
    scanSync(sql);
    return true;
  } catch {
    return false;
  }
}

const CORPUS = [
  "SELECT /* a /* b */ c */ 'x' -- hi\n 'y'\n 'z', E'a\\'b', U&'d\\0061' UESCAPE '!', U&\"d!0061ta\" UESCAPE '!'",
  "SELECT $t$ x $t$, 1e5, 0x1F, a$$b$$, \"Q\"\"x\", jb ?| array['a'], a<-1, $1, B'01', X'ff', N'x'",
  'SELECT 1..2, a.b, t.*, x::int, y := 1, z => 2, f(a => 1), arr[1:2]',
  "SELECT a=-1, b<=-1, c!=d, e<>f, g@-h, i*-j, k||'x', l~~*'m', n#-o, p%-q, r?-s",
  'SELECT 1$$x$$, $1$$y$$, $a, $ a, x$y, "a b"',
  "DELETE FROM orders WHERE id > 0 OR true; DROP TABLE x; COPY t TO '/tmp/x'",
  "SELECT 'a'\r\n'b', E'\\x41'\n'c', U&'x'\n'y', B'1'\n'0'",
  'SELECT Éa, éa, "É", _x, x_1$',
  'SELECT 1 /* x */ -- y\n FROM t /* /* z */ */',
  "SELECT 'it''s', E'it''s', E'\\\\', $$it's$$",
  'SELECT .5, 5., 1.5e+3, 1e-3, 0b1_0, 0o7_7, 0xF_F, 1_2_3',
];

describe('statementShape tokenizes as PostgreSQL does (scanner oracle)', () => {
  for (const sql of CORPUS) {
    it(JSON.stringify(sql).slice(0, 100), () => {
      assert.ok(scans(sql), 'the oracle scans it');
      assert.equal(statementShape(sql), shapeFromScan(sql));
    });
  }

  it('agrees with the scanner on random token soups', () => {
    const piece = fc.constantFrom(
      'select',
      'FROM',
      'Where',
      'x',
      'Abc',
      '"Q""x"',
      '"a b"',
      'U&"d!0061"',
      'uescape',
      "'!'",
      'é',
      "'a'",
      "'it''s'",
      "E'\\n'",
      "e'x'",
      "B'01'",
      "X'ff'",
      "N'x'",
      '$$a$$',
      '$t$ $$ $t$',
      '$1',
      '$',
      '1',
      '1.5',
      '.5',
      '1e5',
      '1e-5',
      '0x1F',
      '1_000',
      '+',
      '-',
      '<',
      '=',
      '<=',
      '?|',
      '?',
      '@-',
      '*',
      '/',
      '%',
      '||',
      '!=',
      '<>',
      '::',
      ':=',
      '..',
      ',',
      '(',
      ')',
      ';',
      '.',
      ':',
      '[',
      ']',
      '&',
      '|',
      '~',
    );
    const sep = fc.constantFrom('', ' ', '\n', '\t', '/* c */', '/* a /* b */ */', '-- c\n', ' \n ');
    fc.assert(
      fc.property(fc.array(fc.tuple(piece, sep), { minLength: 1, maxLength: 14 }), (parts) => {
        const sql = parts.map(([p, s]) => p + s).join('');
        fc.pre(scans(sql));
        assert.equal(statementShape(sql), shapeFromScan(sql), JSON.stringify(sql));
      }),
      { numRuns: 20000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The invariant the verdict cache relies on: same shape, same classification.

describe('same shape, same classification', () => {
  const templates = [
    'DELETE FROM orders WHERE {} = {}',
    'DELETE FROM orders WHERE id = {} OR {} = {}',
    'DELETE FROM orders WHERE id + {} = id + {}',
    'DELETE FROM orders WHERE ({} = {}) IS TRUE',
    'UPDATE orders SET total = {} WHERE id = {}',
    'SELECT {} FROM t WHERE a = {}',
    'EXPLAIN (ANALYZE {}) DELETE FROM orders',
    'COPY orders TO {}',
    'SET work_mem = {}',
    'FETCH {} FROM c',
    'DO {}',
    'SELECT query_to_xml({}, true, true, {})',
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS {}',
    'SELECT * FROM orders LIMIT {}',
    'SELECT {}::regclass',
    'SELECT set_config({}, {}, false)',
    'MERGE INTO t USING s ON {} = {} WHEN MATCHED THEN DELETE',
    'SELECT * FROM t WHERE a = {} -- {}\n; DELETE FROM t WHERE b = {}',
  ];
  const literal = fc.constantFrom(
    "'1'",
    "'0'",
    "'true'",
    "'off'",
    "'orders'",
    "'DROP TABLE x'",
    '1',
    '0',
    '2',
    '1.5',
    '$$x$$',
    '$q$DELETE FROM orders$q$',
    "E'y'",
    "'a'",
    "'pg_read_file'",
    '$$SELECT 1; DROP TABLE x$$',
  );
  it('holds for random literals in statements whose classification could depend on them', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...templates),
        fc.array(literal, { minLength: 4, maxLength: 4 }),
        fc.array(literal, { minLength: 4, maxLength: 4 }),
        (tpl, a, b) => {
          const fill = (xs: string[]): string => {
            let k = 0;
            return tpl.replace(/\{\}/g, () => xs[k++]!);
          };
          const sa = fill(a);
          const sb = fill(b);
          assert.equal(statementShape(sa), statementShape(sb), `${sa} / ${sb}`);
          const ca = classify(sa);
          const cb = classify(sb);
          fc.pre(ca.parseError === undefined && cb.parseError === undefined);
          // Code (DO, CREATE FUNCTION) is a string literal that the classifier reads: its shape
          // says nothing of it. Such statements carry a body, and the guard never caches them
          // by shape; the invariant is that both sides say so.
          const code = (c: typeof ca) => c.statements.map((st) => st.body !== undefined || st.dynamicSql === true);
          if (code(ca).some(Boolean) || code(cb).some(Boolean)) {
            assert.deepEqual(code(ca), code(cb), `${sa} / ${sb}`);
            return;
          }
          assert.deepEqual(ca, cb, `${sa} / ${sb}`);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('holds across a corpus grouped by shape', () => {
    const corpus = [
      'DELETE FROM orders WHERE 1=1',
      'DELETE FROM orders WHERE 1=2',
      "DELETE FROM orders WHERE 'a'='a'",
      "DELETE FROM orders WHERE 'a'='b'",
      'DELETE FROM orders WHERE id = id',
      'delete from ORDERS where ID = Id',
      'DELETE FROM orders WHERE id = 5',
      'DELETE FROM orders WHERE id = 6 -- comment',
      'EXPLAIN (ANALYZE false) DELETE FROM orders',
      'EXPLAIN (ANALYZE true) DELETE FROM orders',
      "EXPLAIN (ANALYZE 'off') DELETE FROM orders",
      "EXPLAIN (ANALYZE 'on') DELETE FROM orders",
      'EXPLAIN (ANALYZE 0) DELETE FROM orders',
      'EXPLAIN (ANALYZE 1) DELETE FROM orders',
      "COPY orders TO '/tmp/a'",
      "COPY orders TO '/tmp/b'",
      'DO $$BEGIN DELETE FROM orders; END$$',
      'DO $$BEGIN PERFORM 1; END$$',
      "SELECT 'DROP TABLE x'",
      "SELECT 'SELECT 1'",
      'DELETE FROM orders WHERE (id, current_time(3)) = (id, current_time(4))',
      'DELETE FROM orders WHERE (id, current_time(3)) = (id, current_time(3))',
    ];
    const byShape = new Map<string, string[]>();
    for (const sql of corpus) {
      const shape = statementShape(sql);
      byShape.set(shape, [...(byShape.get(shape) ?? []), sql]);
    }
    let groups = 0;
    for (const [, sqls] of byShape) {
      if (sqls.length > 1) groups++;
      const first = classify(sqls[0]!);
      const code = first.statements.some((st) => st.body !== undefined || st.dynamicSql === true);
      for (const other of sqls.slice(1)) {
        const classified = classify(other);
        // Code is a literal the classifier reads (see above): only its being code must agree.
        if (code) assert.ok(classified.statements.some((st) => st.body !== undefined || st.dynamicSql === true), other);
        else assert.deepEqual(classified, first, `${sqls[0]} / ${other}`);
      }
    }
    assert.ok(groups >= 6, 'the corpus exercises shared shapes');
  });
});

describe('speed', () => {
  it('shapes a pgbench select in microseconds (measured, not asserted)', (t) => {
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;';
    for (let i = 0; i < 5000; i++) statementShape(sql);
    const n = 50000;
    const start = performance.now();
    for (let i = 0; i < n; i++) statementShape(sql);
    t.diagnostic(`statementShape(): ${(((performance.now() - start) * 1000) / n).toFixed(2)} µs per pgbench select`);
  });
});
