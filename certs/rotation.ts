// Serving-certificate rotation without downtime. A rotation is a sequence of steps, each safe for clients that still
// trust the previous CA bundle: a new CA is first added to the bundle (clients learn it), and only on a later run, once
// the overlap has passed, does the served leaf switch to it; the old CA leaves the bundle when nothing it signed is
// served. Leaves are renewed well before they expire. State lives in a directory (a Secret's content):
// ca.crt (the bundle clients trust), ca.key (the signing CA), tls.crt/tls.key (the served pair), next-ca.crt/key
// (a CA being introduced).

import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueLeaf, type KeyPair } from './authority.ts';

const DAY = 86_400_000;

export interface RotationPolicy {
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
  readonly commonName: string;
  readonly leafDays: number;
  readonly caDays: number;
  /** Renew a leaf this long before it expires. */
  readonly leafRenewDays: number;
  /** Introduce a new CA this long before the current one expires. */
  readonly caRenewDays: number;
  /** How long a new CA sits in the bundle before leaves are signed by it (clients must have reloaded by then). */
  readonly overlapDays: number;
}

export const DEFAULT_ROTATION: Omit<RotationPolicy, 'dnsNames' | 'ips' | 'commonName'> = {
  leafDays: 90,
  caDays: 3650,
  leafRenewDays: 30,
  caRenewDays: 365,
  overlapDays: 7,
};

export interface CertState {
  readonly bundle: readonly string[];
  readonly ca: KeyPair;
  readonly leaf: KeyPair;
  readonly next: KeyPair | null;
}

const notAfter = (pem: string) => new X509Certificate(pem).validToDate.getTime();
const notBefore = (pem: string) => new X509Certificate(pem).validFromDate.getTime();

export function splitPem(bundle: string): string[] {
  return (
    bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((c) => c.trim() + '\n') ?? []
  );
}

/** Whether `leafPem` was signed by one of the CAs in the bundle and is valid at `now`. */
export function trusted(leafPem: string, bundle: readonly string[], now: Date): boolean {
  const leaf = new X509Certificate(leafPem);
  if (leaf.validFromDate.getTime() > now.getTime() || leaf.validToDate.getTime() < now.getTime()) return false;
  return bundle.some((ca) => {
    const c = new X509Certificate(ca);
    return leaf.checkIssued(c) && leaf.verify(c.publicKey) && c.validToDate.getTime() >= now.getTime();
  });
}

export function initialState(policy: RotationPolicy, now: Date): CertState {
  const ca = createCa({ commonName: `${policy.commonName}-ca`, validityDays: policy.caDays, now });
  const leaf = issueLeaf(ca, {
    commonName: policy.commonName,
    dnsNames: policy.dnsNames,
    ips: policy.ips,
    validityDays: policy.leafDays,
    now,
  });
  return { bundle: [ca.certPem], ca, leaf, next: null };
}

export interface RotationStep {
  readonly state: CertState;
  /** What changed, for logs; empty when nothing did. */
  readonly changes: readonly string[];
}

/** One rotation run at `now`. Pure apart from key generation; run it on a schedule (a CronJob, a timer). */
export function rotate(state: CertState, policy: RotationPolicy, now: Date): RotationStep {
  const t = now.getTime();
  const changes: string[] = [];
  let { bundle, ca, leaf, next } = state;
  const issue = (from: KeyPair) =>
    issueLeaf(from, {
      commonName: policy.commonName,
      dnsNames: policy.dnsNames,
      ips: policy.ips,
      validityDays: policy.leafDays,
      now,
    });
  // Drop CAs that have expired or that nothing served depends on any more.
  const kept = bundle.filter(
    (c) => notAfter(c) > t && (c === ca.certPem || c === next?.certPem || trusted(leaf.certPem, [c], now)),
  );
  if (kept.length !== bundle.length) {
    changes.push(`dropped ${bundle.length - kept.length} retired CA(s) from the bundle`);
    bundle = kept;
  }
  if (next === null && notAfter(ca.certPem) - t < policy.caRenewDays * DAY) {
    next = createCa({ commonName: `${policy.commonName}-ca`, validityDays: policy.caDays, now });
    bundle = [...bundle, next.certPem];
    changes.push('introduced a new CA into the bundle (leaves switch to it after the overlap)');
  } else if (next !== null && t - notBefore(next.certPem) >= policy.overlapDays * DAY) {
    ca = next;
    next = null;
    leaf = issue(ca);
    changes.push('switched to the new CA: issued a leaf signed by it');
  }
  if (notAfter(leaf.certPem) - t < policy.leafRenewDays * DAY) {
    leaf = issue(ca);
    changes.push('renewed the serving certificate');
  }
  return { state: { bundle, ca, leaf, next }, changes };
}

const FILES = {
  bundle: 'ca.crt',
  caKey: 'ca.key',
  caCert: 'ca-signing.crt',
  leafCert: 'tls.crt',
  leafKey: 'tls.key',
  nextCert: 'next-ca.crt',
  nextKey: 'next-ca.key',
} as const;

export function loadState(dir: string): CertState | null {
  if (!existsSync(join(dir, FILES.leafCert))) return null;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const hasNext = existsSync(join(dir, FILES.nextCert));
  return {
    bundle: splitPem(read(FILES.bundle)),
    ca: { certPem: read(FILES.caCert), keyPem: read(FILES.caKey) },
    leaf: { certPem: read(FILES.leafCert), keyPem: read(FILES.leafKey) },
    next: hasNext ? { certPem: read(FILES.nextCert), keyPem: read(FILES.nextKey) } : null,
  };
}

/** Writes the state; each file is replaced atomically, the bundle before the leaf so trust always comes first. */
export function saveState(dir: string, state: CertState): void {
  mkdirSync(dir, { recursive: true });
  const write = (f: string, text: string, mode = 0o644) => {
    writeFileSync(join(dir, `.${f}.tmp`), text, { mode });
    renameSync(join(dir, `.${f}.tmp`), join(dir, f));
  };
  write(FILES.bundle, state.bundle.join(''));
  if (state.next) {
    write(FILES.nextCert, state.next.certPem);
    write(FILES.nextKey, state.next.keyPem, 0o600);
  } else {
    rmSync(join(dir, FILES.nextCert), { force: true });
    rmSync(join(dir, FILES.nextKey), { force: true });
  }
  write(FILES.caCert, state.ca.certPem);
  write(FILES.caKey, state.ca.keyPem, 0o600);
  write(FILES.leafKey, state.leaf.keyPem, 0o600);
  write(FILES.leafCert, state.leaf.certPem);
}
