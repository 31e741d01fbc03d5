/**
 * Statement shapes: the key of the guardrails' verdict cache.
 *
 * `statementShape(sql)` replaces literals by `?`, drops comments, collapses whitespace and
 * folds unquoted identifiers and keywords to lower case, so that `SELECT * FROM t WHERE id = 1`
 * and `select *  from t where id=2 -- hi` share one cached verdict. It runs without the parser:
 * a hand-written lexer that follows PostgreSQL's own (scan.l, PostgreSQL 18, with
 * standard_conforming_strings on), a few microseconds per statement.
 *
 * What it guarantees: two texts with the same shape have the same token sequence except for
 * the values of the literals that became `?`, and the classifier never looks at a literal's
 * value (see pg-classifier.ts), so two texts that parse and share a shape classify the same.
 * To hold that, the lexer never splits one PostgreSQL token in two and emits one unit per
 * token (or per run of tokens it keeps verbatim), joined by single spaces, in a form that
 * decodes one way only:
 * - identifiers stay as written: quoted `"X"` and unquoted `x` differ; unquoted ones fold only
 *   ASCII A-Z, as PostgreSQL does with UTF-8;
 * - `?` stands for a string ('', $$, $tag$, E'' without a backslash, B'', X'', N'' as `n?`) or
 *   a number; an operator that contains `?` is written `OP(?|)` so that a lone `?` is always a
 *   literal;
 * - kept verbatim, because their contents decide how they lex: E'' with a backslash, U&'' and
 *   U&"" (with the string after UESCAPE), parameters ($1), malformed numbers (`1abc`, which PostgreSQL
 *   rejects);
 * - an unterminated string, identifier or comment ends the shape with `#ERR` and the rest of
 *   the text verbatim; text that is not well-formed Unicode is returned whole, after `#RAW`.
 *
 * Known limit: PostgreSQL rejects a few literal values at parse time (`float(0)`, a FETCH
 * count given as a string): such a text shares its shape with a valid one but does not parse.
 * The server rejects it as well; the cache should not store verdicts of `unknown` statements.
 *
 * Why not libpg-query's own functions: `normalize` needs a full parse (no faster than
 * classifying), keeps comments and case, and fails on text that does not parse;
 * `fingerprint` is a 64-bit non-cryptographic hash that ignores names PostgreSQL considers
 * cosmetic (prepared statement names, aliases), so distinct statements can share it;
 * `scan` returns PostgreSQL's exact tokens but costs more than a parse (JSON). `scan` is
 * used in the tests as the oracle for this lexer's token boundaries.
 */

const SPACE = new Set([' ', '\t', '\n', '\r', '\f', '\v']);
const OP_CHARS = new Set(['~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=']);
/** Characters whose presence keeps a trailing + or - inside an operator (PostgreSQL's rule). */
const OP_KEEP_TRAILING_SIGN = /[~!@#^&|`?%]/;

function isIdentStart(ch: string): boolean {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch === '_' || ch.charCodeAt(0) >= 0x80;
}
function isIdentCont(ch: string): boolean {
  return isIdentStart(ch) || (ch >= '0' && ch <= '9') || ch === '$';
}
function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

/**
 * A PostgreSQL 16+ numeric literal at lastIndex (decimal, numeric, real, hex, octal, binary,
 * `_` separators); `1..2` is 1, `..`, 2; longest first, as the scanner does.
 */
const NUMBER =
  /0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*(?:\.(?!\.)(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][-+]?\d(?:_?\d)*)?/y;

/** Whitespace between two string literals that makes PostgreSQL join them into one (a comment there does not, in PostgreSQL 18's scanner). */
const QUOTE_CONTINUE = /^[ \t\f\v]*[\n\r][ \t\n\r\f\v]*'/;

function foldAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

class Unterminated extends Error {}

/** A normalized form of `sql` for a verdict cache; see the module comment for what it keeps. */
export function statementShape(sql: string): string {
  if (/\p{Cs}/u.test(sql)) return `#RAW ${sql}`;
  const units: string[] = [];
  let i = 0;
  const n = sql.length;
  let afterUescape = false;

  /** Ends a '…' body starting after the opening quote; returns the index after the closing quote. */
  const quoted = (start: number, backslashEscapes: boolean, doubling = true): number => {
    let j = start;
    for (;;) {
      if (j >= n) throw new Unterminated();
      const ch = sql[j]!;
      if (backslashEscapes && ch === '\\') {
        j += 2;
        continue;
      }
      if (ch === "'") {
        if (doubling && sql[j + 1] === "'") {
          j += 2;
          continue;
        }
        const cont = QUOTE_CONTINUE.exec(sql.slice(j + 1, j + 1 + 4096));
        if (cont) {
          j = j + 1 + cont[0].length;
          continue;
        }
        return j + 1;
      }
      j++;
    }
  };
  const doubleQuoted = (start: number): number => {
    let j = start;
    for (;;) {
      if (j >= n) throw new Unterminated();
      if (sql[j] === '"') {
        if (sql[j + 1] === '"') {
          j += 2;
          continue;
        }
        return j + 1;
      }
      j++;
    }
  };

  try {
    while (i < n) {
      const ch = sql[i]!;
      const next = sql[i + 1];
      const startUnits = units.length;
      if (SPACE.has(ch)) {
        i++;
        continue;
      }
      if (ch === '-' && next === '-') {
        while (i < n && sql[i] !== '\n' && sql[i] !== '\r') i++;
        continue;
      }
      if (ch === '/' && next === '*') {
        let depth = 0;
        let j = i;
        for (;;) {
          if (j >= n) throw new Unterminated();
          if (sql[j] === '/' && sql[j + 1] === '*') {
            depth++;
            j += 2;
          } else if (sql[j] === '*' && sql[j + 1] === '/') {
            depth--;
            j += 2;
            if (depth === 0) break;
          } else j++;
        }
        i = j;
        continue;
      }
      if (ch === "'") {
        const end = quoted(i + 1, false);
        units.push(afterUescape ? sql.slice(i, end) : '?');
        i = end;
      } else if ((ch === 'e' || ch === 'E') && next === "'") {
        const end = quoted(i + 2, true);
        const text = sql.slice(i, end);
        units.push(text.includes('\\') ? text : '?');
        i = end;
      } else if ((ch === 'b' || ch === 'B' || ch === 'x' || ch === 'X') && next === "'") {
        // Bit strings have no '' escape: X'ff''x' is X'ff' then 'x'.
        const end = quoted(i + 2, false, false);
        units.push(ch === 'b' || ch === 'B' ? '?b' : '?x');
        i = end;
      } else if ((ch === 'n' || ch === 'N') && next === "'") {
        const end = quoted(i + 2, false);
        units.push('n?');
        i = end;
      } else if ((ch === 'u' || ch === 'U') && next === '&' && (sql[i + 2] === "'" || sql[i + 2] === '"')) {
        const end = sql[i + 2] === "'" ? quoted(i + 3, false) : doubleQuoted(i + 3);
        units.push(sql.slice(i, end));
        i = end;
      } else if (ch === '"') {
        const end = doubleQuoted(i + 1);
        units.push(sql.slice(i, end));
        i = end;
      } else if (ch === '$' && isDigit(next)) {
        // $1: the digits only, as PostgreSQL's scanner does ($1abc is $1 and abc).
        let j = i + 1;
        while (isDigit(sql[j])) j++;
        units.push(sql.slice(i, j));
        i = j;
      } else if (ch === '$') {
        // $tag$ … $tag$ (or $$ … $$); a `$` that opens nothing is a token by itself.
        let j = i + 1;
        if (j < n && isIdentStart(sql[j]!)) {
          j++;
          while (j < n && isIdentCont(sql[j]!) && sql[j] !== '$') j++;
        }
        if (sql[j] === '$') {
          const tag = sql.slice(i, j + 1);
          const close = sql.indexOf(tag, j + 1);
          if (close < 0) throw new Unterminated();
          units.push('?');
          i = close + tag.length;
        } else {
          units.push('$');
          i++;
        }
      } else if (isIdentStart(ch)) {
        let j = i + 1;
        while (j < n && isIdentCont(sql[j]!)) j++;
        units.push(foldAscii(sql.slice(i, j)));
        i = j;
      } else if (isDigit(ch) || (ch === '.' && isDigit(next))) {
        NUMBER.lastIndex = i;
        let j = i + NUMBER.exec(sql)![0].length;
        if (j < n && isIdentStart(sql[j]!)) {
          // PostgreSQL's "trailing junk" error (1abc, 0x1g): kept verbatim, it never parses.
          while (j < n && isIdentCont(sql[j]!)) j++;
          units.push(sql.slice(i, j));
        } else units.push('?');
        i = j;
      } else if (ch === ':') {
        const two = next === ':' || next === '=';
        units.push(two ? ch + next : ch);
        i += two ? 2 : 1;
      } else if (ch === '.') {
        const two = next === '.';
        units.push(two ? '..' : '.');
        i += two ? 2 : 1;
      } else if (OP_CHARS.has(ch)) {
        let j = i;
        while (j < n && OP_CHARS.has(sql[j]!)) {
          // A comment starts inside an operator run: the operator ends there.
          if (j > i && ((sql[j] === '-' && sql[j + 1] === '-') || (sql[j] === '/' && sql[j + 1] === '*'))) break;
          j++;
        }
        let op = sql.slice(i, j);
        if (op.length > 1 && !OP_KEEP_TRAILING_SIGN.test(op)) {
          while (op.length > 1 && (op.endsWith('+') || op.endsWith('-'))) op = op.slice(0, -1);
        }
        units.push(op.includes('?') ? `OP(${op})` : op);
        i += op.length;
      } else {
        // , ( ) [ ] ; and anything PostgreSQL would reject: one character, verbatim.
        units.push(ch);
        i++;
      }
      if (units.length > startUnits) afterUescape = units[units.length - 1] === 'uescape';
    }
  } catch (err) {
    if (!(err instanceof Unterminated)) throw err;
    units.push('#ERR', sql.slice(i));
  }
  return units.join(' ');
}
