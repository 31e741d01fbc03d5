import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { selfSignedPair, testCertificateAuthority } from './selfsigned.ts';

async function withServer(pair: { cert: string; key: string }, run: (port: number) => Promise<void>): Promise<void> {
  const server = tls.createServer({ cert: pair.cert, key: pair.key }, (socket) => {
    socket.end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run((server.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function connect(options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...options, rejectUnauthorized: true }, () => {
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('end', () => resolve(data));
    });
    socket.on('error', reject);
  });
}

describe('selfSignedPair', () => {
  it('verifies by DNS name and by IP address with the certificate as its own CA', async () => {
    const pair = await selfSignedPair();
    const x509 = new X509Certificate(pair.cert);
    assert.match(x509.subjectAltName ?? '', /DNS:localhost/);
    assert.match(x509.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    await withServer(pair, async (port) => {
      assert.equal(await connect({ host: '127.0.0.1', port, ca: pair.cert, servername: 'localhost' }), 'hello');
      // By IP: no SNI, the IP SAN must match.
      assert.equal(await connect({ host: '127.0.0.1', port, ca: pair.cert }), 'hello');
    });
  });

  it('fails verification for a name it does not carry, and without the CA', async () => {
    const pair = await selfSignedPair({ altNames: ['localhost'] });
    await withServer(pair, async (port) => {
      await assert.rejects(connect({ host: '127.0.0.1', port, ca: pair.cert, servername: 'db.example.com' }), {
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
      await assert.rejects(connect({ host: '127.0.0.1', port, servername: 'localhost' }), {
        code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      });
    });
  });

  it('can make RSA keys', async () => {
    const pair = await selfSignedPair({ keyType: 'rsa', days: 2 });
    assert.match(pair.key, /BEGIN (RSA )?PRIVATE KEY/);
    assert.equal(new X509Certificate(pair.cert).publicKey.asymmetricKeyType, 'rsa');
  });
});

describe('testCertificateAuthority', () => {
  it('issues leaves that verify against the CA certificate only', async () => {
    const ca = await testCertificateAuthority();
    const leaf = await ca.issue(['localhost', '127.0.0.1']);
    assert.ok(new X509Certificate(leaf.cert).checkIssued(new X509Certificate(ca.caCert)));
    await withServer(leaf, async (port) => {
      assert.equal(await connect({ host: '127.0.0.1', port, ca: ca.caCert, servername: 'localhost' }), 'hello');
      assert.equal(await connect({ host: '127.0.0.1', port, ca: ca.caCert }), 'hello');
      const other = await testCertificateAuthority();
      await assert.rejects(connect({ host: '127.0.0.1', port, ca: other.caCert, servername: 'localhost' }));
    });
  });
});
