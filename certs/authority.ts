// A small certificate authority for the webhook's and the extender's serving certificates: a CA, and leaves for the
// service DNS names and loopback addresses. Keys come from Node's crypto; node-forge builds and signs the X.509.

import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CaOptions {
  readonly commonName?: string;
  readonly validityDays?: number;
  readonly now?: Date;
}

export interface LeafOptions {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  readonly validityDays?: number;
  readonly now?: Date;
  /** Client authentication as well as server authentication. */
  readonly client?: boolean;
}

const DAY = 86_400_000;

function newKey(): { forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

/** How far a certificate's notBefore is back-dated from the time it was issued. */
export const BACKDATE_MS = 5 * 60_000;

function baseCert(publicKey: forge.pki.rsa.PublicKey, now: Date, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: forge writes it as hex, and X.509 serials must not be negative.
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  // Back-date by five minutes so that a freshly issued certificate is valid on clocks slightly behind.
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY);
  return cert;
}

export function createCa(options: CaOptions = {}): KeyPair {
  const now = options.now ?? new Date();
  const key = newKey();
  const cert = baseCert(key.publicKey, now, options.validityDays ?? 3650);
  const subject = [
    { name: 'commonName', value: options.commonName ?? 'tessera-ca' },
    { name: 'organizationName', value: 'tessera' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.forgeKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: key.pem };
}

export function issueLeaf(ca: KeyPair, options: LeafOptions): KeyPair {
  const now = options.now ?? new Date();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const key = newKey();
  const cert = baseCert(key.publicKey, now, options.validityDays ?? 365);
  cert.setSubject([{ name: 'commonName', value: options.commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: options.client === true },
    { name: 'subjectAltName', altNames },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: key.pem };
}

/** Seconds until a PEM certificate expires (negative once expired). */
export function secondsToExpiry(certPem: string, now: Date = new Date()): number {
  return (new X509Certificate(certPem).validToDate.getTime() - now.getTime()) / 1000;
}
