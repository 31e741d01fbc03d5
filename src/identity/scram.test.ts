import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  SCRAM_ITERATIONS,
  ScramClientExchange,
  ScramError,
  ScramServerExchange,
  deterministicSalt,
  scramVerifier,
  tlsServerEndPoint,
  type ScramVerifier,
} from './scram.ts';

// RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
const RFC = {
  password: 'pencil',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  iterations: 4096,
  clientFirstBare: 'n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinalWithoutProof: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  proof: 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverSignature: '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};
const RFC_AUTH_MESSAGE = `${RFC.clientFirstBare},${RFC.serverFirst},${RFC.clientFinalWithoutProof}`;

const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

function isScramError(error: unknown): boolean {
  assert.ok(error instanceof ScramError, `expected ScramError, got ${String(error)}`);
  return true;
}

/** A whole exchange between the two sides; returns what finish() returned and the client. */
function exchange(options: {
  password: string;
  candidates: readonly ScramVerifier[];
  salt: Buffer;
  iterations?: number;
  serverBinding?: Buffer | undefined;
  client?: { offered: readonly string[]; tls: { channelBinding: Buffer | undefined } | undefined };
}) {
  const offered = options.client?.offered ?? (options.serverBinding ? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] : ['SCRAM-SHA-256']);
  const client = new ScramClientExchange(options.password, offered, options.client?.tls);
  const server = new ScramServerExchange(options.serverBinding);
  const serverFirst = server.start(client.mechanism, client.clientFirst(), options.salt, options.iterations ?? SCRAM_ITERATIONS);
  const clientFinal = client.clientFinal(serverFirst);
  const result = server.finish(clientFinal, options.candidates);
  return { client, server, result, clientFinal, serverFirst };
}

describe('scramVerifier', () => {
  it('derives the StoredKey and ServerKey of RFC 7677 (computed independently)', () => {
    const verifier = scramVerifier(RFC.password, RFC.salt, RFC.iterations);
    const salted = pbkdf2Sync(RFC.password, RFC.salt, RFC.iterations, 32, 'sha256');
    assert.deepEqual(verifier.storedKey, sha256(hmac(salted, 'Client Key')));
    assert.deepEqual(verifier.serverKey, hmac(salted, 'Server Key'));
    assert.deepEqual(verifier.salt, RFC.salt);
    assert.equal(verifier.iterations, 4096);
  });

  it('accepts the client proof of RFC 7677 and reproduces its server signature', () => {
    const verifier = scramVerifier(RFC.password, RFC.salt, RFC.iterations);
    // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be StoredKey.
    const proof = Buffer.from(RFC.proof, 'base64');
    const signature = hmac(verifier.storedKey, RFC_AUTH_MESSAGE);
    const clientKey = Buffer.from(proof.map((byte, i) => byte ^ signature[i]!));
    assert.deepEqual(sha256(clientKey), verifier.storedKey);
    assert.equal(hmac(verifier.serverKey, RFC_AUTH_MESSAGE).toString('base64'), RFC.serverSignature);
  });

  it('defaults to 4096 iterations', () => {
    assert.equal(SCRAM_ITERATIONS, 4096);
    assert.equal(scramVerifier('x', Buffer.alloc(16)).iterations, 4096);
  });
});

describe('deterministicSalt', () => {
  it('is 16 bytes, stable, and differs by principal and connection', () => {
    const a = deterministicSalt('alice', 'shop');
    assert.equal(a.length, 16);
    assert.deepEqual(deterministicSalt('alice', 'shop'), a);
    assert.notDeepEqual(deterministicSalt('bob', 'shop'), a);
    assert.notDeepEqual(deterministicSalt('alice', 'billing'), a);
  });
});

describe('tlsServerEndPoint', () => {
  it('is the SHA-256 of the certificate', () => {
    const der = randomBytes(300);
    assert.deepEqual(tlsServerEndPoint(der), sha256(der));
  });
});

describe('SCRAM exchange, client against server', () => {
  const salt = RFC.salt;

  it('succeeds with the right password, and the client accepts the server final', () => {
    const { client, result } = exchange({ password: 'pencil', candidates: [scramVerifier('pencil', salt)], salt });
    assert.ok(result);
    assert.equal(result.index, 0);
    assert.match(result.serverFinal, /^v=[A-Za-z0-9+/]+=*$/);
    client.verifyServerFinal(result.serverFinal);
  });

  it('the client-first message is gs2 "n" without TLS and has a printable nonce', () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
    assert.equal(client.mechanism, 'SCRAM-SHA-256');
    assert.match(client.clientFirst(), /^n,,n=,r=[\x21-\x2b\x2d-\x7e]+$/);
  });

  it('the server-first message carries the client nonce, the salt and the iterations', () => {
    const { serverFirst } = exchange({ password: 'pencil', candidates: [], salt, iterations: 4096 });
    assert.match(serverFirst, new RegExp(`^r=[^,]+,s=${salt.toString('base64').replace(/[+/]/g, '\\$&')},i=4096$`));
  });

  it('a wrong password is refused: finish() returns undefined', () => {
    const { result } = exchange({ password: 'pencil2', candidates: [scramVerifier('pencil', salt)], salt });
    assert.equal(result, undefined);
  });

  it('no candidates at all: undefined', () => {
    const { result } = exchange({ password: 'pencil', candidates: [], salt });
    assert.equal(result, undefined);
  });

  it('with several candidates, returns the index of the one the client holds', () => {
    const candidates = ['one', 'two', 'three'].map((password) => scramVerifier(password, salt));
    for (const [index, password] of ['one', 'two', 'three'].entries()) {
      const { client, result } = exchange({ password, candidates, salt });
      assert.equal(result?.index, index);
      client.verifyServerFinal(result.serverFinal);
    }
  });

  it('a tampered server signature is refused by the client', () => {
    const { client, result } = exchange({ password: 'pencil', candidates: [scramVerifier('pencil', salt)], salt });
    assert.ok(result);
    const signature = Buffer.from(result.serverFinal.slice(2), 'base64');
    signature[0]! ^= 1;
    assert.throws(() => client.verifyServerFinal(`v=${signature.toString('base64')}`), isScramError);
    assert.throws(() => client.verifyServerFinal('v='), isScramError);
    assert.throws(() => client.verifyServerFinal('e=invalid-proof'), /invalid-proof/);
  });

  it('a server final before the client final is refused', () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
    assert.throws(() => client.verifyServerFinal(`v=${Buffer.alloc(32).toString('base64')}`), isScramError);
  });

  it('the client refuses a server-first whose nonce does not extend its own', () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
    client.clientFirst();
    assert.throws(() => client.clientFinal(`r=someoneelse,s=${salt.toString('base64')},i=4096`), isScramError);
  });

  it('the client refuses absurd iteration counts', () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
    const nonce = client.clientFirst().split('r=')[1]!;
    for (const i of ['0', '-1', '1.5', '10000001', 'x', '']) {
      assert.throws(() => client.clientFinal(`r=${nonce}abc,s=${salt.toString('base64')},i=${i}`), isScramError, `i=${i}`);
    }
  });

  it('the client refuses a target that offers no SCRAM mechanism', () => {
    assert.throws(() => new ScramClientExchange('pencil', ['MD5'], undefined), isScramError);
  });

  it('the server refuses an unknown mechanism, authzid and extensions', () => {
    assert.throws(() => new ScramServerExchange(undefined).start('SCRAM-SHA-1', 'n,,n=,r=abc', salt, 4096), isScramError);
    assert.throws(() => new ScramServerExchange(undefined).start('SCRAM-SHA-256', 'n,a=admin,n=,r=abc', salt, 4096), isScramError);
    assert.throws(() => new ScramServerExchange(undefined).start('SCRAM-SHA-256', 'n,,m=ext,n=,r=abc', salt, 4096), isScramError);
    assert.throws(() => new ScramServerExchange(undefined).start('SCRAM-SHA-256', 'n,,n=,r=a,b', salt, 4096), isScramError);
  });

  it('the server refuses a client final whose nonce was changed', () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
    const server = new ScramServerExchange(undefined);
    const serverFirst = server.start(client.mechanism, client.clientFirst(), salt, 4096);
    const clientFinal = client.clientFinal(serverFirst);
    const forged = clientFinal.replace(/,r=([^,]+)/, (_, nonce: string) => `,r=${nonce}x`);
    assert.throws(() => server.finish(forged, [scramVerifier('pencil', salt)]), isScramError);
  });
});

describe('SCRAM channel binding', () => {
  const salt = RFC.salt;
  const binding = tlsServerEndPoint(Buffer.from('certificate one'));
  const otherBinding = tlsServerEndPoint(Buffer.from('certificate two'));

  it('client and server with the same binding data: SCRAM-SHA-256-PLUS succeeds', () => {
    const { client, result } = exchange({
      password: 'pencil',
      candidates: [scramVerifier('pencil', salt)],
      salt,
      serverBinding: binding,
      client: { offered: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], tls: { channelBinding: binding } },
    });
    assert.equal(client.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.match(client.clientFirst(), /^p=tls-server-end-point,,/);
    assert.ok(result);
    client.verifyServerFinal(result.serverFinal);
  });

  it('mismatching binding data (a man in the middle) is a ScramError', () => {
    assert.throws(
      () =>
        exchange({
          password: 'pencil',
          candidates: [scramVerifier('pencil', salt)],
          salt,
          serverBinding: binding,
          client: { offered: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], tls: { channelBinding: otherBinding } },
        }),
      isScramError,
    );
  });

  it("flag 'y' while the server offers -PLUS is a downgrade: ScramError", () => {
    // The client saw TLS but not -PLUS in the offer (a stripped mechanism list).
    assert.throws(
      () =>
        exchange({
          password: 'pencil',
          candidates: [scramVerifier('pencil', salt)],
          salt,
          serverBinding: binding,
          client: { offered: ['SCRAM-SHA-256'], tls: { channelBinding: binding } },
        }),
      isScramError,
    );
  });

  it("flag 'y' against a server without binding succeeds", () => {
    const { client, result } = exchange({
      password: 'pencil',
      candidates: [scramVerifier('pencil', salt)],
      salt,
      serverBinding: undefined,
      client: { offered: ['SCRAM-SHA-256'], tls: { channelBinding: undefined } },
    });
    assert.match(client.clientFirst(), /^y,,/);
    assert.equal(result?.index, 0);
  });

  it('-PLUS requested from a server without binding data is a ScramError', () => {
    assert.throws(
      () => new ScramServerExchange(undefined).start('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc', salt, 4096),
      isScramError,
    );
  });

  it('a binding flag with plain SCRAM-SHA-256 is a ScramError', () => {
    assert.throws(
      () => new ScramServerExchange(binding).start('SCRAM-SHA-256', 'p=tls-server-end-point,,n=,r=abc', salt, 4096),
      isScramError,
    );
  });

  it("a client that claims 'n' (no binding) on a TLS server with -PLUS is refused at finish if it rewrites c=", () => {
    const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], { channelBinding: binding });
    const server = new ScramServerExchange(binding);
    const serverFirst = server.start(client.mechanism, client.clientFirst(), salt, 4096);
    const clientFinal = client.clientFinal(serverFirst).replace(/^c=[^,]*/, `c=${Buffer.from('n,,').toString('base64')}`);
    assert.throws(() => server.finish(clientFinal, [scramVerifier('pencil', salt)]), isScramError);
  });
});

describe('SCRAM with untrusted input', () => {
  const salt = RFC.salt;
  const mechanisms = fc.constantFrom('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1', '');
  const scramish = fc.oneof(
    fc.string(),
    fc.string({ unit: fc.constantFrom('n', 'y', 'p', 'r', 'c', 's', 'i', 'v', 'e', '=', ',', 'a', 'm', '-', 'x') }),
    fc
      .array(fc.tuple(fc.constantFrom('r', 'c', 'p', 'm', 'n', 'a', 's', 'i'), fc.string()), { maxLength: 6 })
      .map((attrs) => attrs.map(([k, v]) => `${k}=${v}`).join(',')),
  );

  const onlyScramErrors = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      if (!(error instanceof ScramError)) throw error;
    }
  };

  it('start() on random client-first messages only ever throws ScramError', () => {
    fc.assert(
      fc.property(mechanisms, fc.boolean(), scramish, (mechanism, tls, clientFirst) => {
        const server = new ScramServerExchange(tls ? Buffer.alloc(32, 1) : undefined);
        onlyScramErrors(() => server.start(mechanism, clientFirst, salt, 4096));
        onlyScramErrors(() => server.start(mechanism, `n,,${clientFirst}`, salt, 4096));
      }),
      { numRuns: 500 },
    );
  });

  it('finish() on random client-final messages only ever throws ScramError, and never accepts', () => {
    const candidates = [scramVerifier('pencil', salt, 1)];
    fc.assert(
      fc.property(fc.boolean(), scramish, fc.boolean(), (tls, clientFinal, withNonce) => {
        const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], {
          channelBinding: tls ? Buffer.alloc(32, 1) : undefined,
        });
        const server = new ScramServerExchange(tls ? Buffer.alloc(32, 1) : undefined);
        const serverFirst = server.start(client.mechanism, client.clientFirst(), salt, 1);
        const nonce = /^r=([^,]+)/.exec(serverFirst)![1]!;
        const message = withNonce ? `c=biws,r=${nonce},${clientFinal}` : clientFinal;
        try {
          assert.equal(server.finish(message, candidates), undefined);
        } catch (error) {
          if (!(error instanceof ScramError)) throw error;
        }
      }),
      { numRuns: 500 },
    );
  });

  it('the client side on random server messages only ever throws ScramError', () => {
    fc.assert(
      fc.property(scramish, scramish, (serverFirst, serverFinal) => {
        const client = new ScramClientExchange('pencil', ['SCRAM-SHA-256'], undefined);
        client.clientFirst();
        onlyScramErrors(() => client.clientFinal(serverFirst));
        assert.throws(() => client.verifyServerFinal(serverFinal), isScramError);
      }),
      { numRuns: 500 },
    );
  });
});
