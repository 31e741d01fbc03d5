import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checkPasswordPolicy,
  DEFAULT_SCRYPT,
  hashPassword,
  MAX_PASSWORD_BYTES,
  needsRehash,
  PasswordHashError,
  verifyPassword,
  type ScryptParameters,
} from './passwords.ts';

/** The cheapest parameters in bounds, so the suite stays fast. */
const FAST: ScryptParameters = { ...DEFAULT_SCRYPT, N: 2 ** 14, r: 1 };

const SALT = 'c2FsdHNhbHRzYWx0c2FsdA'; // 16 bytes
const HASH = 'aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g'; // 32 bytes

async function rejects(stored: string, pattern: RegExp): Promise<void> {
  await assert.rejects(verifyPassword('correct horse battery', stored), (error: unknown) => {
    assert.ok(error instanceof PasswordHashError, `expected PasswordHashError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('hashPassword / verifyPassword', () => {
  it('round-trips with the defaults, in the documented PHC format', async () => {
    const stored = await hashPassword('correct horse battery');
    assert.match(stored, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.equal(await verifyPassword('correct horse battery', stored), true);
  });

  it('says false, not throw, for a wrong password', async () => {
    const stored = await hashPassword('correct horse battery', FAST);
    assert.equal(await verifyPassword('correct horse batterY', stored), false);
    assert.equal(await verifyPassword('', stored), false);
    assert.equal(await verifyPassword('x'.repeat(100_000), stored), false);
    assert.equal(await verifyPassword('\uD800', stored), false);
  });

  it('treats composed and decomposed forms as one password (NFKC)', async () => {
    const composed = 'caf\u00e9 au lait!';
    const decomposed = 'cafe\u0301 au lait!';
    assert.notEqual(composed, decomposed);
    assert.equal(await verifyPassword(decomposed, await hashPassword(composed, FAST)), true);
    assert.equal(await verifyPassword(composed, await hashPassword(decomposed, FAST)), true);
    // Compatibility forms too: a full-width A is an A.
    assert.equal(await verifyPassword('\uff21bcdefghijkl', await hashPassword('Abcdefghijkl', FAST)), true);
  });

  it('salts: two hashes of one password differ and both verify', async () => {
    const a = await hashPassword('correct horse battery', FAST);
    const b = await hashPassword('correct horse battery', FAST);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword('correct horse battery', a), true);
    assert.equal(await verifyPassword('correct horse battery', b), true);
  });

  it('refuses to hash with parameters outside the bounds or an unhashable password', async () => {
    const bad: Partial<ScryptParameters>[] = [
      { N: 30_000 },
      { N: 2 ** 13 },
      { N: 2 ** 21 },
      { r: 0 },
      { r: 33 },
      { p: 17 },
      { p: 1.5 },
      { keyLength: 15 },
      { keyLength: 65 },
      { saltLength: 8 },
      { N: 2 ** 20, r: 8 }, // each in bounds, 1 GiB together
    ];
    for (const change of bad) {
      await assert.rejects(hashPassword('correct horse battery', { ...FAST, ...change }), PasswordHashError, JSON.stringify(change));
    }
    await assert.rejects(hashPassword('x'.repeat(MAX_PASSWORD_BYTES + 1), FAST), PasswordHashError);
    await assert.rejects(hashPassword('lone \uDC00 surrogate', FAST), PasswordHashError);
  });

  it('honours non-default parameters and records them', async () => {
    const stored = await hashPassword('correct horse battery', { N: 2 ** 14, r: 2, p: 2, keyLength: 64, saltLength: 32 });
    assert.match(stored, /^\$scrypt\$ln=14,r=2,p=2\$[A-Za-z0-9+/]{43}\$[A-Za-z0-9+/]{86}$/);
    assert.equal(await verifyPassword('correct horse battery', stored), true);
  });
});

describe('verifyPassword on malformed or weakened records (fail closed)', () => {
  it('throws for a different algorithm or not a PHC string', async () => {
    await rejects(`$argon2id$ln=14,r=1,p=1$${SALT}$${HASH}`, /not scrypt/);
    await rejects(`$Scrypt$ln=14,r=1,p=1$${SALT}$${HASH}`, /not scrypt/);
    await rejects('', /not a PHC/);
    await rejects('plaintext-password', /not a PHC/);
    await rejects(`scrypt$ln=14,r=1,p=1$${SALT}$${HASH}`, /not a PHC/);
  });

  it('throws for missing or extra parts', async () => {
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}`, /not a PHC/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$`, /hash is not base64/);
    await rejects(`$scrypt$ln=14,r=1,p=1$$${HASH}`, /salt is not base64/);
    await rejects(`$scrypt$${SALT}$${HASH}`, /not a PHC/);
    await rejects(`$scrypt$v=1$ln=14,r=1,p=1$${SALT}$${HASH}`, /not a PHC/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$${HASH}$`, /not a PHC/);
    await rejects(`$scrypt$ln=14,r=1$${SALT}$${HASH}`, /must be ln, r, p/);
    await rejects(`$scrypt$ln=14,r=1,p=1,x=2$${SALT}$${HASH}`, /must be ln, r, p/);
    await rejects(`$scrypt$r=1,ln=14,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=14,r=1,p$${SALT}$${HASH}`, /p is missing or malformed/);
  });

  it('throws for bad base64', async () => {
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}==$${HASH}`, /salt is not base64/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$${HASH}!`, /hash is not base64/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$${HASH.slice(0, 41)}-_`, /hash is not base64/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$${HASH}AA`, /hash is not base64/); // 45 characters: no whole byte
    await rejects(`$scrypt$ln=14,r=1,p=1$c2FsdHNhbHRzYWx0c2FsdB$${HASH}`, /salt is not canonical/); // stray low bits
  });

  it('throws for parameters out of bounds or not canonical', async () => {
    await rejects(`$scrypt$ln=13,r=1,p=1$${SALT}$${HASH}`, /ln must be/);
    await rejects(`$scrypt$ln=21,r=1,p=1$${SALT}$${HASH}`, /ln must be/);
    await rejects(`$scrypt$ln=14,r=0,p=1$${SALT}$${HASH}`, /r must be/);
    await rejects(`$scrypt$ln=14,r=33,p=1$${SALT}$${HASH}`, /r must be/);
    await rejects(`$scrypt$ln=14,r=1,p=0$${SALT}$${HASH}`, /p must be/);
    await rejects(`$scrypt$ln=14,r=1,p=17$${SALT}$${HASH}`, /p must be/);
    await rejects(`$scrypt$ln=20,r=32,p=1$${SALT}$${HASH}`, /more than/); // 4 GiB
    await rejects(`$scrypt$ln=18,r=8,p=16$${SALT}$${HASH}`, /more work than/); // seconds per login
    await rejects(`$scrypt$ln=014,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=-14,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=1e1,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=0x10,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$ln=14,r=1,p=1$${SALT}$${HASH.slice(0, 20)}`, /key length must be/); // 15 bytes
    await rejects(`$scrypt$ln=14,r=1,p=1$${'A'.repeat(88)}$${HASH}`, /key length must be|salt length must be/);
    await rejects(`$scrypt$ln=14,r=1,p=1$c2FsdA$${HASH}`, /salt length must be/); // 4-byte salt
  });

  it('rejects N that is not a power of two: the format cannot express it, and fractional ln is refused', async () => {
    await rejects(`$scrypt$ln=14.5,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    await rejects(`$scrypt$N=30000,r=1,p=1$${SALT}$${HASH}`, /ln is missing or malformed/);
    assert.throws(() => needsRehash(`$scrypt$ln=15,r=8,p=1$${SALT}$${HASH}`, { ...DEFAULT_SCRYPT, N: 30_000 }), /power of two/);
  });

  it('never fails any other way on arbitrary stored strings (property)', async () => {
    const phcish = fc.oneof(
      fc.string(),
      fc.string({ unit: fc.constantFrom('$', 's', 'c', 'r', 'y', 'p', 't', 'l', 'n', '=', ',', '1', '4', '8', 'A', '/', '+', '-') }),
      fc
        .tuple(
          fc.constantFrom('scrypt', 'argon2id', ''),
          fc.string({ unit: fc.constantFrom('l', 'n', 'r', 'p', '=', ',', '0', '1', '4', '5', '9') }),
          fc.base64String(),
          fc.base64String(),
        )
        .map(([id, params, salt, hash]) => `$${id}$${params}$${salt.replace(/=+$/, '')}$${hash.replace(/=+$/, '')}`),
    );
    await fc.assert(
      fc.asyncProperty(phcish, async (stored) => {
        try {
          await verifyPassword('correct horse battery', stored);
        } catch (error) {
          if (!(error instanceof PasswordHashError)) throw error;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('needsRehash', () => {
  it('is false for the parameters a record was hashed with, true when any differ', async () => {
    const stored = await hashPassword('correct horse battery', FAST);
    assert.equal(needsRehash(stored, FAST), false);
    assert.equal(needsRehash(stored), true); // defaults are stronger
    assert.equal(needsRehash(stored, { ...FAST, r: 2 }), true);
    assert.equal(needsRehash(stored, { ...FAST, p: 2 }), true);
    assert.equal(needsRehash(stored, { ...FAST, N: 2 ** 15 }), true);
    assert.equal(needsRehash(stored, { ...FAST, keyLength: 64 }), true);
    assert.equal(needsRehash(stored, { ...FAST, saltLength: 32 }), true);
  });

  it('is false for a default record against the defaults', async () => {
    assert.equal(needsRehash(`$scrypt$ln=15,r=8,p=1$${SALT}$${HASH}`), false);
  });

  it('throws PasswordHashError for a malformed record, like verifyPassword', () => {
    assert.throws(() => needsRehash('$scrypt$ln=15,r=8$x$y'), PasswordHashError);
  });
});

describe('random passwords round-trip (property)', () => {
  it('verifies the password it hashed and refuses a different one', async () => {
    const password = fc.string({ unit: 'grapheme', maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(password, password, async (a, b) => {
        const stored = await hashPassword(a, FAST);
        assert.equal(await verifyPassword(a, stored), true);
        assert.equal(await verifyPassword(b, stored), a.normalize('NFKC') === b.normalize('NFKC'));
      }),
      { numRuns: 15 },
    );
  });
});

describe('checkPasswordPolicy', () => {
  it('accepts a reasonable password', () => {
    assert.equal(checkPasswordPolicy('correct horse battery'), undefined);
    assert.equal(checkPasswordPolicy('aaaaaaaaaaab'), undefined);
    assert.equal(checkPasswordPolicy('日本語のパスワードですよね'), undefined);
    assert.equal(checkPasswordPolicy('é'.repeat(MAX_PASSWORD_BYTES / 2 - 1) + 'e'), undefined);
  });

  it('refuses short passwords, counting characters not UTF-16 units', () => {
    assert.match(checkPasswordPolicy('') ?? '', /at least 12 characters/);
    assert.match(checkPasswordPolicy('short pass!') ?? '', /at least 12 characters/);
    // 6 astral characters are 12 UTF-16 units but 6 characters.
    assert.match(checkPasswordPolicy('😀😁😂🤣😃😄') ?? '', /at least 12 characters/);
    // 12 decomposed code points normalize to 6.
    assert.match(checkPasswordPolicy('e\u0301'.repeat(6)) ?? '', /at least 12 characters/);
  });

  it('refuses passwords over 1024 bytes of UTF-8', () => {
    assert.match(checkPasswordPolicy('ab'.repeat(513)) ?? '', /at most 1024 bytes/);
    assert.match(checkPasswordPolicy('é'.repeat(513)) ?? '', /at most 1024 bytes/); // 513 characters, 1026 bytes
    assert.equal(checkPasswordPolicy('ab'.repeat(512)), undefined);
  });

  it('refuses a single repeated character, after normalization', () => {
    assert.match(checkPasswordPolicy('aaaaaaaaaaaa') ?? '', /single repeated character/);
    assert.match(checkPasswordPolicy('aaaaaa\uff41\uff41\uff41\uff41\uff41\uff41') ?? '', /single repeated character/);
    assert.match(checkPasswordPolicy('😀'.repeat(12)) ?? '', /single repeated character/);
  });

  it('refuses a password that is not valid Unicode', () => {
    assert.match(checkPasswordPolicy('abcdefghijk\uD800l') ?? '', /unpaired surrogate/);
  });
});
