// `tessera serve webhook`: runs a server until SIGTERM, then drains and exits.

import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startExtender } from '../extender/server.ts';
import { startWebhook } from '../webhook/server.ts';
import { loadKubeconfig } from './kube.ts';
import { SERVE_USAGE, UsageError } from './help.ts';

async function untilSignal(): Promise<void> {
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
}

function tls(cert: string | undefined, key: string | undefined): { tls?: { certFile: string; keyFile: string } } {
  if (Boolean(cert) !== Boolean(key)) throw new UsageError('--tls-cert and --tls-key go together', SERVE_USAGE);
  return cert ? { tls: { certFile: cert, keyFile: key! } } : {};
}

/** --port: an integer port (0 picks a free one). */
function portOf(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`--port ${text}: expected a port number`, SERVE_USAGE);
  return port;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevelOf(text: string): string {
  if (!LOG_LEVELS.includes(text))
    throw new UsageError(`--log-level ${text}: expected one of ${LOG_LEVELS.join(', ')}`, SERVE_USAGE);
  return text;
}

/** Options both servers take. */
const SERVER_OPTIONS = {
  'policy-dir': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  host: { type: 'string', default: '0.0.0.0' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
} as const;

async function serveWebhook(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_OPTIONS,
      port: { type: 'string', default: '8443' },
      'system-user': { type: 'string', multiple: true, default: [] },
      'audit-interval': { type: 'string', default: '60' },
    },
  });
  if (!values['policy-dir']) throw new UsageError('--policy-dir is required', SERVE_USAGE);
  const port = portOf(values.port);
  const auditSeconds = Number(values['audit-interval']);
  if (!(auditSeconds > 0))
    throw new UsageError(`--audit-interval ${values['audit-interval']}: expected seconds, e.g. 60`, SERVE_USAGE);
  const log = pino({ level: logLevelOf(values['log-level']), base: { component: 'tessera-webhook' } });
  const hook = await startWebhook({
    policyDir: values['policy-dir'],
    host: values.host,
    port,
    ...tls(values['tls-cert'], values['tls-key']),
    kubeconfig: loadKubeconfig(values.kubeconfig, values.context),
    systemUsers: values['system-user'],
    auditIntervalMs: auditSeconds * 1000,
    log,
  });
  await untilSignal();
  log.info('shutting down');
  await hook.close();
  return 0;
}

async function serveExtender(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_OPTIONS,
      port: { type: 'string', default: '8888' },
      prefix: { type: 'string', default: '' },
      strategy: { type: 'string' },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string', default: 'tessera-extender' },
      'fleet-cluster': { type: 'string' },
      'fleet-region': { type: 'string' },
      'fleet-namespace': { type: 'string', default: 'tessera-system' },
      'publish-capacity': { type: 'boolean', default: false },
      'gpu-fit-check': { type: 'boolean', default: false },
    },
  });
  const fleetDuty = values['publish-capacity'] || values['gpu-fit-check'];
  if (fleetDuty && !values['fleet-cluster'])
    throw new UsageError(
      "--publish-capacity and --gpu-fit-check need --fleet-cluster (this cluster's MultiKueueCluster name)",
      SERVE_USAGE,
    );
  const port = portOf(values.port);
  const log = pino({ level: logLevelOf(values['log-level']), base: { component: 'tessera-extender' } });
  const ext = await startExtender({
    kubeconfig: loadKubeconfig(values.kubeconfig, values.context),
    ...(values['policy-dir'] ? { policyDir: values['policy-dir'] } : {}),
    host: values.host,
    port,
    prefix: values.prefix,
    ...tls(values['tls-cert'], values['tls-key']),
    ...(values.strategy ? { strategy: values.strategy } : {}),
    ...(values['lease-namespace']
      ? { leaseNamespace: values['lease-namespace'], leaseName: values['lease-name'] }
      : {}),
    ...(fleetDuty
      ? {
          fleet: {
            cluster: values['fleet-cluster']!,
            region: values['fleet-region'] || null,
            namespace: values['fleet-namespace'],
            publishCapacity: values['publish-capacity'],
            gpuFitCheck: values['gpu-fit-check'],
          },
        }
      : {}),
    log,
  });
  await untilSignal();
  log.info('shutting down');
  await ext.close();
  return 0;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === 'webhook') return serveWebhook(rest);
  if (what === 'extender') return serveExtender(rest);
  throw new UsageError(`unknown server "${what ?? ''}"`, SERVE_USAGE);
}
