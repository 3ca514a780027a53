// `tessera certs issue | rotate`: serving certificates for the webhook and the extender, and their rotation without
// downtime (certs/rotation.ts). Run `rotate` on a schedule; it prints what changed and exits 0 when nothing did.
// The state lives in a directory (--dir) or in Secrets (--secret, see certs-kube.ts).
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

/** Options that only make sense with --secret (a cluster to talk to). */
const SECRET_ONLY = ['ca-secret', 'webhook-configuration', 'restart-deployment', 'kubeconfig', 'context'] as const;

/** NAMESPACE/NAME of --secret, each a DNS label or subdomain as Kubernetes names are. */
function secretOf(text: string): { namespace: string; name: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(text);
  if (!m) throw new UsageError(`--secret ${JSON.stringify(text)}: expected NAMESPACE/NAME`, CERTS_USAGE);
  return { namespace: m[1]!, name: m[3]! };
}

export function certsCommand(argv: string[]): number | Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'issue' && sub !== 'rotate') throw new UsageError(`unknown certs command "${sub ?? ''}"`, CERTS_USAGE);
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string' },
      secret: { type: 'string' },
      'ca-secret': { type: 'string' },
      name: { type: 'string' },
      dns: { type: 'string', multiple: true },
      ip: { type: 'string', multiple: true },
      now: { type: 'string' },
      'issue-if-missing': { type: 'boolean' },
      'webhook-configuration': { type: 'string', multiple: true },
      'restart-deployment': { type: 'string', multiple: true },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
    },
  });
  if (Boolean(values.dir) === Boolean(values.secret))
    throw new UsageError('give either --dir or --secret (where the certificates are kept)', CERTS_USAGE);
  if (values['issue-if-missing'] && sub !== 'rotate')
    throw new UsageError('--issue-if-missing goes with rotate', CERTS_USAGE);
  const policy = policyOf(values);
  const now = nowOf(values.now);
  if (values.secret) return withSecrets(sub, values.secret, values, policy, now);
  const stray = SECRET_ONLY.filter((o) => values[o] !== undefined);
  if (stray.length > 0) throw new UsageError(`--${stray[0]} goes with --secret`, CERTS_USAGE);
  const dir = values.dir!;
  const state = loadState(dir);
  if (sub === 'issue' || (state === null && values['issue-if-missing'])) {
    if (state) throw new Error(`${dir} already holds certificates; use "tessera certs rotate"`);
    saveState(dir, initialState(policy, now), now);
    console.log(
      `issued a CA and a serving certificate for ${[...policy.dnsNames, ...policy.ips].join(', ')} into ${dir}`,
    );
    return 0;
  }
  if (!state) throw new Error(`${dir} holds no certificates; use "tessera certs issue" first`);
  const step = rotate(state, policy, now);
  if (step.changes.length === 0) {
    console.log('nothing to rotate');
    return 0;
  }
  saveState(dir, step.state, now);
  for (const c of step.changes) console.log(c);
  return 0;
}

async function withSecrets(
  command: 'issue' | 'rotate',
  secret: string,
  values: {
    'ca-secret'?: string;
    'issue-if-missing'?: boolean;
    'webhook-configuration'?: string[];
    'restart-deployment'?: string[];
    kubeconfig?: string;
    context?: string;
  },
  policy: RotationPolicy,
  now: Date,
): Promise<number> {
  const { namespace, name } = secretOf(secret);
  const caSecret = values['ca-secret'] ?? `${name}-ca`;
  if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(caSecret))
    throw new UsageError(`--ca-secret ${JSON.stringify(caSecret)}: expected a Secret's name`, CERTS_USAGE);
  if (caSecret === name) throw new UsageError('--ca-secret must name another Secret than --secret', CERTS_USAGE);
  const { loadKubeconfig } = await import('./kube.ts');
  const { runWithSecrets } = await import('./certs-kube.ts');
  const lines = await runWithSecrets(loadKubeconfig(values.kubeconfig, values.context), {
    command,
    namespace,
    secret: name,
    caSecret,
    policy,
    now,
    issueIfMissing: values['issue-if-missing'] ?? false,
    webhookConfigurations: [...new Set(values['webhook-configuration'] ?? [])],
    restartDeployments: [...new Set(values['restart-deployment'] ?? [])],
  });
  for (const l of lines) console.log(l);
  return 0;
}
