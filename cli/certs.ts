// `tessera certs issue | rotate`: serving certificates for the webhook and the extender, and their rotation without
// downtime (certs/rotation.ts). Run `rotate` on a schedule; it prints what changed and exits 0 when nothing did.
// Every input is checked before anything is issued or written, and a state that would break clients is never written:
// a bad invocation leaves the directory as it was.

import { parseArgs } from 'node:util';
import {
  DEFAULT_ROTATION,
  initialState,
  loadState,
  policyProblems,
  rotate,
  saveState,
  type RotationPolicy,
} from '../certs/rotation.ts';
import { CERTS_USAGE, UsageError } from './help.ts';

function policyOf(values: { name?: string; dns?: string[]; ip?: string[] }): RotationPolicy {
  if (values.name === undefined) throw new UsageError('--name is required', CERTS_USAGE);
  const policy: RotationPolicy = {
    ...DEFAULT_ROTATION,
    commonName: values.name,
    dnsNames: [...new Set(values.dns ?? [])],
    ips: [...new Set(values.ip ?? [])],
  };
  const problems = policyProblems(policy);
  if (problems.length > 0) throw new UsageError(problems.join('; '), CERTS_USAGE);
  return policy;
}

/** `--now`: an ISO 8601 date or time; anything else is refused (an invalid date would retire every CA). */
function nowOf(text: string | undefined): Date {
  if (text === undefined) return new Date();
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime()))
    throw new UsageError(
      `--now ${JSON.stringify(text)} is not an ISO 8601 time such as 2026-06-01T00:00:00Z`,
      CERTS_USAGE,
    );
  return date;
}

export function certsCommand(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub !== 'issue' && sub !== 'rotate') throw new UsageError(`unknown certs command "${sub ?? ''}"`, CERTS_USAGE);
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
  if (!values.dir) throw new UsageError('--dir is required', CERTS_USAGE);
  const policy = policyOf(values);
  const now = nowOf(values.now);
  if (sub === 'issue') {
    if (loadState(values.dir)) throw new Error(`${values.dir} already holds certificates; use "tessera certs rotate"`);
    saveState(values.dir, initialState(policy, now), now);
    console.log(
      `issued a CA and a serving certificate for ${[...policy.dnsNames, ...policy.ips].join(', ')} into ${values.dir}`,
    );
    return 0;
  }
  const state = loadState(values.dir);
  if (!state) throw new Error(`${values.dir} holds no certificates; use "tessera certs issue" first`);
  const step = rotate(state, policy, now);
  if (step.changes.length === 0) {
    console.log('nothing to rotate');
    return 0;
  }
  saveState(values.dir, step.state, now);
  for (const c of step.changes) console.log(c);
  return 0;
}
