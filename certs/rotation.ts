// Serving-certificate rotation without downtime. A rotation is a sequence of steps, each safe for clients that still
// trust the previous CA bundle: a new CA is first added to the bundle (clients learn it), and only on a later run, once
// the overlap has passed, does the served leaf switch to it; the old CA leaves the bundle when nothing it signed is
// served. Leaves are renewed well before they expire. State lives in a directory (a Secret's content):
// ca.crt (the bundle clients trust), ca.key (the signing CA), tls.crt/tls.key (the served pair), next-ca.crt/key
// (a CA being introduced).

import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { isIP } from 'node:net';
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

/** IPv6 addresses as X.509 tooling prints them (eight groups, no zero compression), IPv4 as written. */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  let text = ip.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => parseInt(g, 16).toString(16)).join(':');
}

/** The names a leaf serves: its common name, DNS names and IP addresses. */
function namesOf(leafPem: string): string {
  const cert = new X509Certificate(leafPem);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
  const sans = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s !== '')
    .map((s) => (s.startsWith('IP Address:') ? `IP:${canonicalIp(s.slice('IP Address:'.length))}` : s.toLowerCase()))
    .sort();
  return [cn, ...new Set(sans)].join(' ');
}

function wantedNames(policy: RotationPolicy): string {
  const sans = [
    ...policy.dnsNames.map((d) => `dns:${d.toLowerCase()}`),
    ...policy.ips.map((ip) => `IP:${canonicalIp(ip)}`),
  ].sort();
  return [policy.commonName, ...new Set(sans)].join(' ');
}

/** Whether the served leaf is for other names than the policy's (the --name, --dns or --ip given changed). */
export function namesChanged(leafPem: string, policy: RotationPolicy): boolean {
  return namesOf(leafPem) !== wantedNames(policy);
}

/** Problems with the names and addresses of a rotation policy (checked before anything is issued or written). */
export function policyProblems(policy: RotationPolicy): string[] {
  const problems: string[] = [];
  if (policy.commonName.trim() === '') problems.push('--name must not be empty');
  const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
  for (const d of policy.dnsNames) {
    const labels = d.replace(/^\*\./, '').split('.');
    if (d.length > 253 || !labels.every((l) => label.test(l)))
      problems.push(
        `--dns ${JSON.stringify(d)} is not a DNS name (letters, digits and hyphens in dot-separated labels)`,
      );
  }
  for (const ip of policy.ips) if (isIP(ip) === 0) problems.push(`--ip ${JSON.stringify(ip)} is not an IP address`);
  if (policy.dnsNames.length === 0 && policy.ips.length === 0)
    problems.push('name at least one --dns or --ip: clients check the certificate against the address they dial');
  return problems;
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
  } else if (namesChanged(leaf.certPem, policy)) {
    leaf = issue(ca);
    changes.push(
      `re-issued the serving certificate for ${[policy.commonName, ...policy.dnsNames, ...policy.ips].join(', ')} (the names changed)`,
    );
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

/** The files a client or a server reads (the bundle and the served pair); the rest is the CA's, for rotation only. */
export const SERVING_FILES: readonly string[] = [FILES.bundle, FILES.leafCert, FILES.leafKey];

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

/**
 * The state held as file name -> content (a Secret's data), as loadState reads a directory: null when there is no
 * serving certificate; an error naming the missing files when only part of a state is there (never guessed).
 */
export function stateFromFiles(files: Readonly<Record<string, string>>): CertState | null {
  if (files[FILES.leafCert] === undefined) return null;
  const required: string[] = [FILES.bundle, FILES.caCert, FILES.caKey, FILES.leafCert, FILES.leafKey];
  if (files[FILES.nextCert] !== undefined) required.push(FILES.nextKey);
  const missing = required.filter((f) => files[f] === undefined);
  if (missing.length > 0) throw new Error(`incomplete certificate state: ${missing.join(', ')} missing`);
  const read = (f: string) => files[f]!;
  return {
    bundle: splitPem(read(FILES.bundle)),
    ca: { certPem: read(FILES.caCert), keyPem: read(FILES.caKey) },
    leaf: { certPem: read(FILES.leafCert), keyPem: read(FILES.leafKey) },
    next: files[FILES.nextCert] !== undefined ? { certPem: read(FILES.nextCert), keyPem: read(FILES.nextKey) } : null,
  };
}

/** The state as file name -> content, the files saveState writes (after checking it the same way). */
export function stateToFiles(state: CertState, now: Date = new Date()): Record<string, string> {
  const problems = stateProblems(state, now);
  if (problems.length > 0) throw new Error(`refusing to write the certificates: ${problems.join('; ')}`);
  return {
    [FILES.bundle]: state.bundle.join(''),
    ...(state.next ? { [FILES.nextCert]: state.next.certPem, [FILES.nextKey]: state.next.keyPem } : {}),
    [FILES.caCert]: state.ca.certPem,
    [FILES.caKey]: state.ca.keyPem,
    [FILES.leafKey]: state.leaf.keyPem,
    [FILES.leafCert]: state.leaf.certPem,
  };
}

/** Why a state must not be written (it would break the clients or the servers that read the directory), if so. */
export function stateProblems(state: CertState, now: Date): string[] {
  const problems: string[] = [];
  const pairs: [string, KeyPair | null][] = [
    ['signing CA', state.ca],
    ['serving certificate', state.leaf],
    ['next CA', state.next],
  ];
  for (const [what, pair] of pairs) {
    if (pair === null) continue;
    try {
      if (!new X509Certificate(pair.certPem).checkPrivateKey(createPrivateKey(pair.keyPem)))
        problems.push(`the ${what}'s key does not match its certificate`);
    } catch (e) {
      problems.push(`the ${what} is not a readable certificate and key: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (problems.length > 0) return problems;
  const caEnd = new X509Certificate(state.ca.certPem).validToDate;
  if (caEnd.getTime() <= now.getTime())
    return [
      `the signing CA expired on ${caEnd.toISOString()}; rotation cannot bridge that (no client trusts a successor yet): issue afresh with "tessera certs issue" into an empty directory and publish its ca.crt`,
    ];
  if (state.bundle.length === 0) problems.push('the CA bundle would be empty (every CA in it has expired)');
  if (!state.bundle.includes(state.ca.certPem)) problems.push('the signing CA is not in the CA bundle');
  if (state.next !== null && !state.bundle.includes(state.next.certPem))
    problems.push('the CA being introduced is not in the CA bundle');
  if (problems.length === 0 && !trusted(state.leaf.certPem, state.bundle, now))
    problems.push(`the serving certificate is not valid at ${now.toISOString()} under the CA bundle`);
  return problems;
}

/**
 * Writes the state, after checking it (a state that would break clients is refused and nothing is written). Every
 * file is written in full to a temporary name and synced first; then they are renamed into place, the bundle first
 * and the serving certificate last, so that trust always comes before what it must trust.
 */
export function saveState(dir: string, state: CertState, now: Date = new Date()): void {
  const problems = stateProblems(state, now);
  if (problems.length > 0) throw new Error(`refusing to write ${dir}: ${problems.join('; ')}`);
  mkdirSync(dir, { recursive: true });
  const files: [string, string, number][] = [[FILES.bundle, state.bundle.join(''), 0o644]];
  if (state.next) files.push([FILES.nextCert, state.next.certPem, 0o644], [FILES.nextKey, state.next.keyPem, 0o600]);
  files.push(
    [FILES.caCert, state.ca.certPem, 0o644],
    [FILES.caKey, state.ca.keyPem, 0o600],
    [FILES.leafKey, state.leaf.keyPem, 0o600],
    [FILES.leafCert, state.leaf.certPem, 0o644],
  );
  const tmp = (f: string) => join(dir, `.${f}.tmp`);
  try {
    for (const [f, text, mode] of files) {
      const fd = openSync(tmp(f), 'w', mode);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  } catch (e) {
    for (const [f] of files) rmSync(tmp(f), { force: true });
    throw e;
  }
  for (const [f] of files) renameSync(tmp(f), join(dir, f));
  if (!state.next) {
    rmSync(join(dir, FILES.nextCert), { force: true });
    rmSync(join(dir, FILES.nextKey), { force: true });
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
