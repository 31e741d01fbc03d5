/**
 * The import rules of docs/design ("rooms") as a test, so that a wrong import fails CI
 * instead of a review.
 *
 * Rules, checked on every .ts file under src/:
 *  - protocol-isolation: a file in src/protocols/<p>/ never imports src/protocols/<q>/ (q ≠ p),
 *    src/store/ or src/api/.
 *  - pure-core: a file in src/core/ imports only src/core/ and `node:buffer`.
 *  - pure-wire: a file in src/wire/ imports only src/core/, src/wire/ and `node:buffer`.
 *    Type-only imports count too: a codec that names `net.Socket` in a type already knows
 *    about sockets.
 *  - no-export-star: an index.ts re-exports by name, never with `export *`.
 *  - web-isolation: a file in web/ (the browser UI, built apart by Vite) imports nothing from
 *    src/: the UI talks to the gateway over its HTTP API only, and a server module pulled into
 *    the bundle would ship gateway code to browsers. Checked on web/'s .ts and .tsx files.
 *
 * Test files (`*.test.ts`) beside the code are scanned with the same rules, except that
 * core and wire tests may also import the test tooling (node:test, node:assert, fast-check).
 *
 * Specifiers are read with the TypeScript parser (static imports, `export … from`,
 * dynamic `import()`, `import('…')` types, `require()`), so commented-out imports and
 * strings that merely look like imports are not counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface SourceText {
  /** Repo-relative POSIX path, e.g. `src/wire/pg/framer.ts`. */
  readonly path: string;
  readonly text: string;
}

export interface Violation {
  readonly file: string;
  readonly line: number;
  readonly rule: 'protocol-isolation' | 'pure-core' | 'pure-wire' | 'no-export-star' | 'web-isolation';
  readonly detail: string;
}

interface ImportRef {
  readonly specifier: string;
  readonly line: number;
}

interface ExportStar {
  readonly line: number;
}

const TEST_TOOLING = new Set(['node:test', 'node:assert', 'node:assert/strict', 'fast-check']);

function scan(file: SourceText): { imports: ImportRef[]; exportStars: ExportStar[] } {
  const kind = file.path.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, kind);
  const imports: ImportRef[] = [];
  const exportStars: ExportStar[] = [];
  const lineOf = (node: ts.Node): number => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const add = (literal: ts.Node | undefined, at: ts.Node): void => {
    if (literal !== undefined && ts.isStringLiteralLike(literal)) imports.push({ specifier: literal.text, line: lineOf(at) });
  };

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, node);
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node);
      // `export * from` and `export * as ns from` both re-export a module's whole surface.
      if (node.moduleSpecifier !== undefined && (node.exportClause === undefined || ts.isNamespaceExport(node.exportClause))) {
        exportStars.push({ line: lineOf(node) });
      }
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node);
    } else if (ts.isCallExpression(node)) {
      const isDynamicImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if (isDynamicImport || isRequire) add(node.arguments[0], node);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg)) add(arg.literal, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { imports, exportStars };
}

/** Where an import points: a repo path for relative specifiers, else the specifier itself. */
function resolve(fromFile: string, specifier: string): { kind: 'path'; path: string } | { kind: 'module'; name: string } {
  if (specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..') {
    return { kind: 'path', path: posix.normalize(posix.join(posix.dirname(fromFile), specifier)) };
  }
  if (specifier.startsWith('/')) return { kind: 'path', path: specifier };
  return { kind: 'module', name: specifier };
}

const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

function protocolOf(path: string): string | undefined {
  const m = /^src\/protocols\/([^/]+)\//.exec(path);
  return m?.[1];
}

/** Checks the import rules on a set of files; returns every violation, in file order. */
export function checkArchitecture(files: readonly SourceText[]): Violation[] {
  const violations: Violation[] = [];
  for (const file of files) {
    const { imports, exportStars } = scan(file);
    const isTest = file.path.endsWith('.test.ts');

    if (posix.basename(file.path) === 'index.ts') {
      for (const star of exportStars) {
        violations.push({
          file: file.path,
          line: star.line,
          rule: 'no-export-star',
          detail: 'index.ts re-exports with `export *`; name each export',
        });
      }
    }

    const protocol = protocolOf(file.path);
    const inCore = under(file.path, 'src/core');
    const inWire = under(file.path, 'src/wire');
    const inWeb = under(file.path, 'web');

    for (const ref of imports) {
      const target = resolve(file.path, ref.specifier);
      const shown = target.kind === 'path' && target.path !== ref.specifier ? `'${ref.specifier}' (${target.path})` : `'${ref.specifier}'`;

      if (protocol !== undefined && target.kind === 'path') {
        const other = protocolOf(`${target.path}/`);
        if (other !== undefined && other !== protocol) {
          violations.push({
            file: file.path,
            line: ref.line,
            rule: 'protocol-isolation',
            detail: `protocol '${protocol}' imports protocol '${other}': ${shown}`,
          });
        } else if (under(target.path, 'src/store') || under(target.path, 'src/api')) {
          violations.push({
            file: file.path,
            line: ref.line,
            rule: 'protocol-isolation',
            detail: `protocol '${protocol}' imports ${target.path.split('/').slice(0, 2).join('/')}/: ${shown}`,
          });
        }
      }

      if (inWeb && target.kind === 'path' && under(target.path, 'src')) {
        violations.push({ file: file.path, line: ref.line, rule: 'web-isolation', detail: `the web UI imports server code: ${shown}` });
      }

      if (inCore || inWire) {
        const allowedDirs = inCore ? ['src/core'] : ['src/core', 'src/wire'];
        const ok =
          target.kind === 'path'
            ? allowedDirs.some((dir) => under(target.path, dir))
            : target.name === 'node:buffer' || (isTest && TEST_TOOLING.has(target.name));
        if (!ok) {
          const rule = inCore ? 'pure-core' : 'pure-wire';
          const allowed = inCore ? 'src/core/ and node:buffer' : 'src/core/, src/wire/ and node:buffer';
          violations.push({ file: file.path, line: ref.line, rule, detail: `imports ${shown}; only ${allowed} are allowed` });
        }
      }
    }
  }
  return violations;
}

export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.file}:${v.line}  [${v.rule}] ${v.detail}`).join('\n');
}

function listTs(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(posix.join(root, dir), { withFileTypes: true })) {
    const rel = posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(root, rel));
    else if (entry.isFile() && (entry.name.endsWith('.ts') || entry.name.endsWith('.tsx'))) out.push(rel);
  }
  return out.sort();
}

// --- The rules hold on the real tree -------------------------------------------------------

const repoRoot = fileURLToPath(new URL('..', import.meta.url)).replaceAll('\\', '/');

test('src/ follows the import rules of the design', () => {
  const files = listTs(repoRoot, 'src').map((path) => ({ path, text: readFileSync(posix.join(repoRoot, path), 'utf8') }));
  assert.ok(files.length > 0, 'no .ts files found under src/');
  const violations = checkArchitecture(files);
  assert.equal(violations.length, 0, `import rules broken:\n${formatViolations(violations)}`);
});

test('web/ imports nothing from src/', () => {
  const files = listTs(repoRoot, 'web').map((path) => ({ path, text: readFileSync(posix.join(repoRoot, path), 'utf8') }));
  assert.ok(
    files.some((f) => f.path.endsWith('.tsx')),
    'no .tsx files found under web/',
  );
  const violations = checkArchitecture(files);
  assert.equal(violations.length, 0, `import rules broken:\n${formatViolations(violations)}`);
});

// --- The checker can fail ------------------------------------------------------------------

test('checker: a protocol importing another protocol, the store or the API is reported with file:line', () => {
  const violations = checkArchitecture([
    {
      path: 'src/protocols/pg/frontend.ts',
      text: [
        "import { GatewayError } from '../../core/index.ts';",
        "import { decode } from '../../wire/pg/codec.ts';",
        "import { sendErr } from '../mysql/render.ts';",
        'import {',
        '  openStore,',
        "} from '../../store/sqlite.ts';",
        "export { routes } from '../../api/server.ts';",
        "const lazy = await import('../ssh/frontend.ts');",
        "import { helper } from './render.ts';",
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.file}:${v.line} ${v.rule}`),
    [
      'src/protocols/pg/frontend.ts:3 protocol-isolation',
      'src/protocols/pg/frontend.ts:4 protocol-isolation',
      'src/protocols/pg/frontend.ts:7 protocol-isolation',
      'src/protocols/pg/frontend.ts:8 protocol-isolation',
    ],
  );
  assert.match(violations[0]?.detail ?? '', /protocol 'pg' imports protocol 'mysql'/);
  assert.match(violations[1]?.detail ?? '', /src\/store\//);
  assert.match(formatViolations(violations), /^src\/protocols\/pg\/frontend\.ts:3 {2}\[protocol-isolation\]/);
});

test('checker: core imports only core and node:buffer, type-only imports included', () => {
  const violations = checkArchitecture([
    {
      path: 'src/core/command.ts',
      text: [
        "import { Buffer } from 'node:buffer';",
        "import type { Clock } from './clock.ts';",
        "import type { Socket } from 'node:net';",
        "import { encode } from '../wire/pg/codec.ts';",
        "import { z } from 'zod';",
        "import 'node:fs';",
        "type T = import('../policy/engine.ts').Engine;",
        "const fs = require('fs');",
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.line} ${v.rule}`),
    ['3 pure-core', '4 pure-core', '5 pure-core', '6 pure-core', '7 pure-core', '8 pure-core'],
  );
});

test('checker: wire may import core and wire but no other module or package', () => {
  const violations = checkArchitecture([
    {
      path: 'src/wire/pg/framer.ts',
      text: [
        "import { GatewayError } from '../../core/errors.ts';",
        "import { readCString } from '../common/bytes.ts';",
        "import { Buffer } from 'node:buffer';",
        "import { EventEmitter } from 'node:events';",
        "import { Pool } from 'pg';",
        "import { plan } from '../../policy/mask.ts';",
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.line} ${v.rule}`),
    ['4 pure-wire', '5 pure-wire', '6 pure-wire'],
  );
});

test('checker: test files beside core/wire code may use the test tooling, nothing else', () => {
  const violations = checkArchitecture([
    {
      path: 'src/wire/pg/framer.test.ts',
      text: [
        "import { test } from 'node:test';",
        "import assert from 'node:assert/strict';",
        "import fc from 'fast-check';",
        "import { Framer } from './framer.ts';",
        "import { createServer } from 'node:net';",
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.line} ${v.rule}`),
    ['5 pure-wire'],
  );
});

test('checker: comments and strings that look like imports are not imports', () => {
  const violations = checkArchitecture([
    {
      path: 'src/core/errors.ts',
      text: [
        "// import { Pool } from 'pg';",
        '/*',
        "import net from 'node:net';",
        '*/',
        'const example = "import x from \'node:fs\'";',
        "export const s = `await import('node:net')`;",
      ].join('\n'),
    },
  ]);
  assert.deepEqual(violations, []);
});

test('checker: index.ts with `export *` is reported; named re-exports are fine', () => {
  const violations = checkArchitecture([
    {
      path: 'src/policy/index.ts',
      text: [
        "export { classify } from './sql.ts';",
        "export type { Verdict } from '../core/index.ts';",
        "export * from './masking.ts';",
        "export * as detectors from './detectors.ts';",
      ].join('\n'),
    },
    // Only index.ts files carry the rule.
    { path: 'src/policy/all.ts', text: "export * from './masking.ts';" },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.file}:${v.line} ${v.rule}`),
    ['src/policy/index.ts:3 no-export-star', 'src/policy/index.ts:4 no-export-star'],
  );
});

test('checker: the web UI may import packages and its own files, nothing from src/', () => {
  const violations = checkArchitecture([
    {
      path: 'web/src/pages/access.tsx',
      text: [
        "import { useState } from 'react';",
        "import { call } from '../api.ts';",
        "import type { Connection } from '../../../src/core/index.ts';",
        "import { parseDuration } from '../../../src/core/duration.ts';",
        'export const A = () => <p>{String(useState)}</p>;',
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    violations.map((v) => `${v.line} ${v.rule}`),
    ['3 web-isolation', '4 web-isolation'],
  );
});

test('checker: files outside the guarded rooms may import what they need', () => {
  const violations = checkArchitecture([
    {
      path: 'src/main.ts',
      text: "import { startPg } from './protocols/pg/index.ts';\nimport { openStore } from './store/index.ts';\nimport net from 'node:net';",
    },
    { path: 'src/session/pipeline.ts', text: "import { Pool } from 'pg';\nimport { x } from '../store/index.ts';" },
  ]);
  assert.deepEqual(violations, []);
});
