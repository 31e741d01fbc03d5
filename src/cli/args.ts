/** Argument handling shared by the commands. */

import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config/index.ts';
import { openStore, type Store } from '../store/index.ts';

/** A command line that cannot be run: exit status 2, with the usage. */
export class UsageError extends Error {}

export function options<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(args: readonly string[], spec: T) {
  try {
    return parseArgs({ args: [...args], options: spec, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Options and positional arguments, for commands that name what they act on. */
export function optionsAndArguments<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(
  args: readonly string[],
  spec: T,
) {
  try {
    return parseArgs({ args: [...args], options: spec, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The local administrator's way in: the gateway's own store, as its config names it. */
export async function withLocalStore<T>(configFile: string, run: (store: Store, config: Config) => Promise<T>): Promise<T> {
  const config = await loadConfig(configFile, process.env, { withoutTargetSecrets: true });
  const store = await openStore(config.store);
  try {
    return await run(store, config);
  } finally {
    await store.close();
  }
}

/** A secret piped in (`--password-stdin`), without its trailing newline. */
export async function readPassword(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
