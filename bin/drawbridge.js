#!/usr/bin/env node
// Drawbridge runs its TypeScript sources directly, which needs Node's type stripping (22.18+).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `drawbridge: Node ${process.versions.node} is too old; use Node 24 (npm scripts and npx use the one this package pins).\n`,
  );
  process.exit(1);
}
// A reader that stops early (`drawbridge grant … | head -1`) is not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
