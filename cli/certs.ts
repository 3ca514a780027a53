// `tessera certs issue | rotate`: serving certificates for the webhook and the extender, and their rotation without
// downtime (certs/rotation.ts). Run `rotate` on a schedule; it prints what changed and exits 0 when nothing did.

import { parseArgs } from 'node:util';
import {
  DEFAULT_ROTATION,
  initialState,
  loadState,
  rotate,
  saveState,
  type RotationPolicy,
} from '../certs/rotation.ts';

export const CERTS_USAGE = `tessera certs issue --dir DIR --name NAME [--dns NAME]... [--ip ADDR]...
tessera certs rotate --dir DIR --name NAME [--dns NAME]... [--ip ADDR]... [--now ISO-TIME]
  DIR receives ca.crt (the bundle to trust: caBundle, the scheduler's caFile), tls.crt and tls.key (to serve).`;

function policyOf(values: { name?: string; dns?: string[]; ip?: string[] }): RotationPolicy {
  if (!values.name) throw new Error(`--name is required\n\n${CERTS_USAGE}`);
  return { ...DEFAULT_ROTATION, commonName: values.name, dnsNames: values.dns ?? [], ips: values.ip ?? [] };
}

export function certsCommand(argv: string[]): number {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string' },
      name: { type: 'string' },
      dns: { type: 'string', multiple: true },
      ip: { type: 'string', multiple: true },
      now: { type: 'string' },
    },
  });
  if (!values.dir) throw new Error(`--dir is required\n\n${CERTS_USAGE}`);
  const policy = policyOf(values);
  const now = values.now ? new Date(values.now) : new Date();
  if (sub === 'issue') {
    if (loadState(values.dir)) throw new Error(`${values.dir} already holds certificates; use "tessera certs rotate"`);
    saveState(values.dir, initialState(policy, now));
    console.log(
      `issued a CA and a serving certificate for ${[...policy.dnsNames, ...policy.ips].join(', ')} into ${values.dir}`,
    );
    return 0;
  }
  if (sub === 'rotate') {
    const state = loadState(values.dir);
    if (!state) throw new Error(`${values.dir} holds no certificates; use "tessera certs issue" first`);
    const step = rotate(state, policy, now);
    if (step.changes.length === 0) {
      console.log('nothing to rotate');
      return 0;
    }
    saveState(values.dir, step.state);
    for (const c of step.changes) console.log(c);
    return 0;
  }
  throw new Error(`unknown certs command "${sub ?? ''}"\n\n${CERTS_USAGE}`);
}
