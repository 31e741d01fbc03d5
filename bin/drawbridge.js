#!/usr/bin/env -S node --liftoff-only
// --liftoff-only: V8 runs WebAssembly (the SQL parser, libpg_query, and Cedar) from its baseline
// compiler only. Its optimising compiler takes about 500 MB, for about a second, to compile the
// parser's one huge function once the first statements have run (docs/policy.md#memory).
// Drawbridge runs from its compiled JavaScript (`npm run build`, which `npm start`, `npm test`
// and `npm run bench` do first) when that is at least as new as every source file, else from
// its TypeScript sources directly, which needs Node's type stripping (22.18+).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const stamp = join(root, 'dist', '.built');
const compiled = existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource(join(root, 'src'));

const [major, minor] = process.versions.node.split('.').map(Number);
if (!compiled && (major < 22 || (major === 22 && minor < 18))) {
  process.stderr.write(
    `drawbridge: Node ${process.versions.node} is too old to run the sources; use Node 24 (npm scripts and npx use the one this package pins), or run \`npm run build\` first.\n`,
  );
  process.exit(1);
}
// A reader that stops early (`drawbridge grant … | head -1`) is not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await import(compiled ? '../dist/cli/main.js' : '../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
