/**
 * Self-signed certificates and a throwaway certificate authority, for development
 * listeners and for tests of certificate verification (`verify-full`).
 *
 * Guarantees: every certificate carries subjectAltName entries (DNS names and IP
 * addresses, chosen by the string's shape), so hostname verification works against
 * `localhost`, `127.0.0.1` and `::1` by default; signatures use SHA-256; keys are ECDSA
 * P-256 unless RSA 2048 is asked for (some old clients accept only RSA).
 *
 * Limits: the keys are generated in memory and returned as unencrypted PEM; nothing here
 * is meant to protect production traffic. A self-signed pair is its own trust anchor: a
 * client passes the certificate itself as `ca`.
 */
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

export interface CertificateOptions {
  /** Subject common name; defaults to the first alt name. */
  commonName?: string;
  /** DNS names and IP addresses; default `['localhost', '127.0.0.1', '::1']`. */
  altNames?: string[];
  /** Validity in days from now; default 365. */
  days?: number;
  /** Default 'ec' (P-256), which is much faster to generate than RSA. */
  keyType?: 'ec' | 'rsa';
}

export interface PemPair {
  cert: string;
  key: string;
}

export interface TestCertificateAuthority {
  /** The CA certificate (PEM), to pass as `ca` to a verifying client. */
  caCert: string;
  /** A leaf certificate for these names, signed by the CA. */
  issue(names?: string[], options?: Omit<CertificateOptions, 'altNames'>): Promise<PemPair>;
}

const DEFAULT_ALT_NAMES = ['localhost', '127.0.0.1', '::1'];
const DAY_MS = 24 * 60 * 60 * 1000;
// Tolerate a client clock slightly behind ours.
const BACKDATE_MS = 5 * 60 * 1000;

type AltNameEntry = { type: 2; value: string } | { type: 7; ip: string };

function altNameEntries(names: string[]): AltNameEntry[] {
  return names.map((name) => (isIP(name) === 0 ? { type: 2, value: name } : { type: 7, ip: name }));
}

function keyOptions(keyType: 'ec' | 'rsa'): { keyType: 'ec'; curve: 'P-256' } | { keyType: 'rsa'; keySize: number } {
  return keyType === 'ec' ? { keyType: 'ec', curve: 'P-256' } : { keyType: 'rsa', keySize: 2048 };
}

function validity(days: number): { notBeforeDate: Date; notAfterDate: Date } {
  const now = Date.now();
  return { notBeforeDate: new Date(now - BACKDATE_MS), notAfterDate: new Date(now + days * DAY_MS) };
}

/** A self-signed server certificate with subjectAltName entries for `altNames`. */
export async function selfSignedPair(options: CertificateOptions = {}): Promise<PemPair> {
  const altNames = options.altNames ?? DEFAULT_ALT_NAMES;
  const commonName = options.commonName ?? altNames[0] ?? 'localhost';
  const result = await generate([{ name: 'commonName', value: commonName }], {
    ...keyOptions(options.keyType ?? 'ec'),
    ...validity(options.days ?? 365),
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: altNameEntries(altNames) },
    ],
  });
  return { cert: result.cert, key: result.private };
}

/**
 * A fresh certificate authority whose leaves chain to `caCert`; for tests that must tell
 * "trusted issuer" from "self-signed" (e.g. verify-full against a target).
 */
export async function testCertificateAuthority(options: { commonName?: string; days?: number } = {}): Promise<TestCertificateAuthority> {
  const days = options.days ?? 365;
  const ca = await generate([{ name: 'commonName', value: options.commonName ?? 'Drawbridge Test CA' }], {
    ...keyOptions('ec'),
    ...validity(days),
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return {
    caCert: ca.cert,
    async issue(names = DEFAULT_ALT_NAMES, leafOptions = {}) {
      const result = await generate([{ name: 'commonName', value: leafOptions.commonName ?? names[0] ?? 'localhost' }], {
        ...keyOptions(leafOptions.keyType ?? 'ec'),
        ...validity(leafOptions.days ?? days),
        algorithm: 'sha256',
        ca: { key: ca.private, cert: ca.cert },
        extensions: [
          { name: 'basicConstraints', cA: false },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
          { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
          { name: 'subjectAltName', altNames: altNameEntries(names) },
        ],
      });
      return { cert: result.cert, key: result.private };
    },
  };
}
