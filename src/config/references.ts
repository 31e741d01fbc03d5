/**
 * Secrets by reference: `${env:NAME}` and `${file:PATH}` inside any string value of the
 * config, so that secrets never sit in the file itself. `$${` writes a literal `${`.
 *
 * Guarantees: a reference that cannot be resolved (unset variable, unreadable file,
 * unknown kind, unterminated `${`) is an error, never an empty string. Resolution happens
 * once, at load; nothing is re-read later.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

export type Resolved =
  { readonly ok: true; readonly value: string; readonly substituted: boolean } | { readonly ok: false; readonly reason: string };

/** Expands every reference in `text`. `dir` is the folder relative file paths resolve against. */
export function resolveReferences(text: string, env: Env, dir: string): Resolved {
  if (!text.includes('${')) return { ok: true, value: text, substituted: false };
  let out = '';
  let substituted = false;
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text[i];
      i += 1;
      continue;
    }
    const end = text.indexOf('}', i + 2);
    if (end < 0) {
      return { ok: false, reason: 'unterminated "${" (write "$${" for a literal "${")' };
    }
    const body = text.slice(i + 2, end);
    const colon = body.indexOf(':');
    const kind = colon < 0 ? body : body.slice(0, colon);
    const arg = colon < 0 ? '' : body.slice(colon + 1);
    if (kind === 'env') {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(arg)) {
        return { ok: false, reason: `invalid environment variable name in "\${${body}}"` };
      }
      const value = env[arg];
      if (value === undefined) {
        return { ok: false, reason: `environment variable ${arg} is not set` };
      }
      out += value;
    } else if (kind === 'file') {
      if (arg === '') return { ok: false, reason: 'empty file path in "${file:}"' };
      const path = resolve(dir, arg);
      let content: string;
      try {
        content = readFileSync(path, 'utf8');
      } catch (err) {
        return { ok: false, reason: `cannot read file ${path} (${errorCode(err)})` };
      }
      // One trailing newline is what editors and `echo` add; it is never part of a secret.
      out += content.endsWith('\r\n') ? content.slice(0, -2) : content.endsWith('\n') ? content.slice(0, -1) : content;
    } else {
      return {
        ok: false,
        reason: `unknown reference "\${${body}}"; expected \${env:NAME} or \${file:PATH} (write "$\${" for a literal "\${")`,
      };
    }
    substituted = true;
    i = end + 1;
  }
  return { ok: true, value: out, substituted };
}

export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}
