/**
 * Keeps the documentation honest about the code it describes:
 *  - docs/errors.md has exactly one `### <code>` section per member of the `GatewayErrorCode`
 *    union in src/core/errors.ts, and each section names the SQLSTATE that
 *    src/protocols/pg/render.ts sends and a severity;
 *  - README.md starts, after its title, with the two commands for a fresh machine;
 *  - relative links in README.md and docs/ point at files that exist.
 * The checks are plain functions, tested on bad examples too, so that a broken check cannot
 * pass silently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewayErrorCode } from '../src/core/index.ts';
import { sqlstateOf } from '../src/protocols/pg/render.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

/** The string members of `export type GatewayErrorCode = | 'a' | 'b' ...;`. */
export function errorCodesOf(errorsTs: string): string[] {
  const union = /export\s+type\s+GatewayErrorCode\s*=([^;]*);/.exec(errorsTs);
  if (!union) throw new Error('no `export type GatewayErrorCode = …;` found');
  const body = union[1]!.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
  return [...body.matchAll(/'([^']+)'|"([^"]+)"/g)].map((m) => (m[1] ?? m[2])!);
}

export interface ErrorSection {
  readonly code: string;
  readonly body: string;
}

/** The `### <code>` sections of errors.md (a code may be written in backticks), each up to the next heading. */
export function errorSectionsOf(markdown: string): ErrorSection[] {
  const sections: ErrorSection[] = [];
  let current: { code: string; lines: string[] } | undefined;
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const heading = fence ? null : /^(#{1,6})\s+(.*?)\s*$/.exec(line);
    if (heading) {
      if (current) sections.push({ code: current.code, body: current.lines.join('\n') });
      current = heading[1] === '###' ? { code: heading[2]!.replace(/^`(.*)`$/, '$1'), lines: [] } : undefined;
    } else {
      current?.lines.push(line);
    }
  }
  if (current) sections.push({ code: current.code, body: current.lines.join('\n') });
  return sections;
}

/** Every disagreement between the union, errors.md and the renderer; empty when they agree. */
export function errorDocProblems(codes: readonly string[], markdown: string, sqlstate: (code: string) => string | undefined): string[] {
  const problems: string[] = [];
  const sections = errorSectionsOf(markdown);
  const seen = new Set<string>();
  for (const section of sections) {
    if (seen.has(section.code)) problems.push(`${section.code}: documented twice`);
    seen.add(section.code);
    if (!codes.includes(section.code)) {
      problems.push(`${section.code}: documented, but not a GatewayErrorCode`);
      continue;
    }
    const written = /SQLSTATE:?\s*`?([0-9A-Z]{5})`?/.exec(section.body)?.[1];
    const expected = sqlstate(section.code);
    if (written === undefined) problems.push(`${section.code}: no SQLSTATE written`);
    else if (written !== expected) problems.push(`${section.code}: SQLSTATE ${written} written, the renderer sends ${expected}`);
    if (!/Severity:?\s*\**(FATAL|ERROR)\b/.test(section.body)) problems.push(`${section.code}: no severity (FATAL or ERROR)`);
  }
  for (const code of codes) if (!seen.has(code)) problems.push(`${code}: not documented in docs/errors.md`);
  return problems;
}

/** README.md must open, after its title, with a code block whose commands are these two lines. */
export function readmeStartProblems(readme: string): string[] {
  const lines = readme.split('\n');
  let i = 0;
  const skipBlank = () => {
    while (i < lines.length && lines[i]!.trim() === '') i++;
  };
  skipBlank();
  if (lines[i] !== '# Drawbridge') return ['README.md does not start with "# Drawbridge"'];
  i++;
  skipBlank();
  if (!/^```/.test(lines[i] ?? '')) return ['README.md: the title is not followed by a code block'];
  const commands: string[] = [];
  for (i++; i < lines.length && !/^```/.test(lines[i]!); i++) {
    const command = lines[i]!.replace(/\s#.*$/, '').trim();
    if (command) commands.push(command);
  }
  const expected = ['npm install && npm start', 'npm test'];
  return JSON.stringify(commands) === JSON.stringify(expected)
    ? []
    : [`README.md: the first code block runs ${JSON.stringify(commands)}, expected ${JSON.stringify(expected)}`];
}

/** Relative links `[text](path#anchor)` outside code that point at missing files. */
export function brokenLinks(file: string, markdown: string, exists: (path: string) => boolean): string[] {
  const problems: string[] = [];
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  for (const match of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = match[1]!;
    if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
    const path = join(dirname(file), target.split('#')[0]!);
    if (!exists(path)) problems.push(`${file}: link to ${target}, which does not exist`);
  }
  return problems;
}

// --- The real files ---------------------------------------------------------------------------

const codes = errorCodesOf(read('src/core/errors.ts'));

test('every GatewayErrorCode has a section in docs/errors.md with the SQLSTATE the renderer sends', () => {
  assert.ok(codes.length >= 10, `only ${codes.length} codes parsed from src/core/errors.ts`);
  const problems = errorDocProblems(codes, read('docs/errors.md'), (code) => sqlstateOf(code as GatewayErrorCode));
  assert.deepEqual(problems, []);
});

test('README.md starts with the two commands for a fresh machine', () => {
  assert.deepEqual(readmeStartProblems(read('README.md')), []);
});

test('relative links in README.md and docs/ point at existing files', () => {
  const files = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .map((name) => `docs/${name}`),
  ];
  const problems = files.flatMap((file) => brokenLinks(file, read(file), (path) => existsSync(join(root, path))));
  assert.deepEqual(problems, []);
});

// --- The checks themselves catch what they should ----------------------------------------------

const sampleUnion = `
export type GatewayErrorCode =
  | 'auth.failed'
  // | 'commented.out'
  | 'internal';
export class GatewayError extends Error {}
`;
const sampleStates: Record<string, string> = { 'auth.failed': '28P01', internal: 'XX000' };
const sampleDoc = (authState: string, extra = '') => `# Errors

### auth.failed

- SQLSTATE: \`${authState}\` (invalid_password)
- Severity: FATAL

\`\`\`
### not.a.heading (inside a fence)
\`\`\`

### \`internal\`

- SQLSTATE: \`XX000\`
- Severity: FATAL
${extra}`;

test('checker: parses the union members, ignoring comments', () => {
  assert.deepEqual(errorCodesOf(sampleUnion), ['auth.failed', 'internal']);
  assert.throws(() => errorCodesOf('export type Other = "a";'), /GatewayErrorCode/);
});

test('checker: a matching doc passes', () => {
  assert.deepEqual(
    errorDocProblems(errorCodesOf(sampleUnion), sampleDoc('28P01'), (code) => sampleStates[code]),
    [],
  );
});

test('checker: a wrong SQLSTATE, a missing code, an unknown or duplicate section and a missing severity are reported', () => {
  const lookup = (code: string) => sampleStates[code];
  assert.deepEqual(errorDocProblems(['auth.failed', 'internal'], sampleDoc('28000'), lookup), [
    'auth.failed: SQLSTATE 28000 written, the renderer sends 28P01',
  ]);
  assert.deepEqual(errorDocProblems(['auth.failed', 'internal', 'target.lost'], sampleDoc('28P01'), lookup), [
    'target.lost: not documented in docs/errors.md',
  ]);
  assert.deepEqual(errorDocProblems(['auth.failed', 'internal'], sampleDoc('28P01', '\n### made.up\n\nSQLSTATE `00000`\n'), lookup), [
    'made.up: documented, but not a GatewayErrorCode',
  ]);
  assert.deepEqual(errorDocProblems(['auth.failed', 'internal'], sampleDoc('28P01', '\n### internal\n\n- Severity: ERROR\n'), lookup), [
    'internal: documented twice',
    'internal: no SQLSTATE written',
  ]);
  assert.deepEqual(
    errorDocProblems(
      ['auth.failed', 'internal'],
      '### auth.failed\n\nSQLSTATE `28P01`\n\n### internal\n\nSQLSTATE `XX000`, FATAL\n',
      lookup,
    ),
    ['auth.failed: no severity (FATAL or ERROR)', 'internal: no severity (FATAL or ERROR)'],
  );
});

test('checker: README openings that are not the two commands are reported', () => {
  const good = '# Drawbridge\n\n```sh\nnpm install && npm start   # comment\nnpm test   # comment\n```\n\nText.\n';
  assert.deepEqual(readmeStartProblems(good), []);
  assert.equal(readmeStartProblems('# Drawbridge\n\nIntro first.\n\n```sh\nnpm install && npm start\nnpm test\n```\n').length, 1);
  assert.equal(readmeStartProblems('# Drawbridge\n\n```sh\nnpm test\nnpm install && npm start\n```\n').length, 1);
  assert.equal(readmeStartProblems('# Drawbridge\n\n```sh\nnpm install && npm start\n```\n').length, 1);
  assert.equal(readmeStartProblems('# Other\n\n```sh\nnpm install && npm start\nnpm test\n```\n').length, 1);
});

test('checker: broken relative links are reported, URLs, anchors and code are not', () => {
  const exists = (path: string) => path === 'docs/errors.md';
  const markdown = '[ok](errors.md#internal) [web](https://example.org) [here](#x) `[no](nope.md)` [bad](missing.md)\n';
  assert.deepEqual(brokenLinks('docs/postgres.md', markdown, exists), ['docs/postgres.md: link to missing.md, which does not exist']);
});
