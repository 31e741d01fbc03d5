/** Runs a program, or the compiled `drawbridge` CLI (`npm run build` first), as a person would: its exit code and output. */

import { execFile } from 'node:child_process';

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `command` with `args`, its environment only PATH and `env`; never rejects (a failure is its code). */
export function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(command, [...args], { timeout: 60_000, env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** `drawbridge <args>` from this checkout's dist/. */
export const cli = (...args: string[]): Promise<Ran> => run(process.execPath, ['bin/drawbridge.js', ...args]);
