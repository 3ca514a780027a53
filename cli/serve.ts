// `tessera serve webhook`: runs a server until SIGTERM, then drains and exits.

import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startAgent } from '../agent/server.ts';
import { DELIVERY_MODES, ENFORCEMENT_KINDS } from '../core/node-agent/delivery.ts';
import { startDispatcher } from '../dispatcher/dispatcher.ts';
import { namespaceTenantFrom, startJobWebhook } from '../dispatcher/job-webhook.ts';
import { startExtender } from '../extender/server.ts';
import { KubeJson } from '../server/kube-json.ts';
import { PolicyStore } from '../server/policy-store.ts';
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
  'policy-cache-dir': { type: 'string' },
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
      'kubevirt-user': { type: 'string', multiple: true, default: [] },
      'audit-interval': { type: 'string', default: '60' },
      'quota-namespace': { type: 'string', default: 'tessera-system' },
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
    ...(values['policy-cache-dir'] ? { policyCacheDir: values['policy-cache-dir'] } : {}),
    host: values.host,
    port,
    ...tls(values['tls-cert'], values['tls-key']),
    kubeconfig: loadKubeconfig(values.kubeconfig, values.context),
    systemUsers: values['system-user'],
    ...(values['kubevirt-user'].length > 0 ? { kubevirtUsers: values['kubevirt-user'] } : {}),
    auditIntervalMs: auditSeconds * 1000,
    quotaReservations: { namespace: values['quota-namespace'] },
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
      'lease-seconds': { type: 'string', default: '3' },
      'pod-name': { type: 'string' },
      'pod-namespace': { type: 'string' },
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
  const leaseSeconds = Number(values['lease-seconds']);
  if (!Number.isInteger(leaseSeconds) || leaseSeconds < 2)
    throw new UsageError(`--lease-seconds ${values['lease-seconds']}: expected whole seconds, at least 2`, SERVE_USAGE);
  if (values['pod-name'] && !values['lease-namespace'])
    throw new UsageError('--pod-name labels the leader’s pod: it needs --lease-namespace', SERVE_USAGE);
  const log = pino({ level: logLevelOf(values['log-level']), base: { component: 'tessera-extender' } });
  const ext = await startExtender({
    kubeconfig: loadKubeconfig(values.kubeconfig, values.context),
    ...(values['policy-dir'] ? { policyDir: values['policy-dir'] } : {}),
    ...(values['policy-cache-dir'] ? { policyCacheDir: values['policy-cache-dir'] } : {}),
    host: values.host,
    port,
    prefix: values.prefix,
    ...tls(values['tls-cert'], values['tls-key']),
    ...(values.strategy ? { strategy: values.strategy } : {}),
    ...(values['lease-namespace']
      ? { leaseNamespace: values['lease-namespace'], leaseName: values['lease-name'], leaseSeconds }
      : {}),
    ...(values['pod-name'] ? { podName: values['pod-name'] } : {}),
    ...(values['pod-namespace'] ? { podNamespace: values['pod-namespace'] } : {}),
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

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${flag} ${value}: expected one of ${allowed.join(', ')}`, SERVE_USAGE);
  return value as T;
}

function seconds(flag: string, text: string): number {
  const value = Number(text);
  if (!(value > 0)) throw new UsageError(`--${flag} ${text}: expected seconds, e.g. 5`, SERVE_USAGE);
  return value * 1000;
}

async function serveNodeAgent(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'node-name': { type: 'string' },
      'driver-root': { type: 'string', default: '/' },
      'device-plugin-dir': { type: 'string', default: '/var/lib/kubelet/device-plugins' },
      'pod-resources-socket': { type: 'string', default: '/var/lib/kubelet/pod-resources/kubelet.sock' },
      delivery: { type: 'string', default: 'auto' },
      'cdi-kind': { type: 'string', default: 'nvidia.com/gpu' },
      'cdi-dir': { type: 'string', multiple: true, default: ['/etc/cdi', '/var/run/cdi'] },
      'write-cdi-spec': { type: 'string' },
      'dev-root': { type: 'string', default: '/' },
      'toolkit-config': { type: 'string', default: '/etc/nvidia-container-runtime/config.toml' },
      enforcement: { type: 'string', default: 'auto' },
      'hami-core-dir': { type: 'string', default: '/usr/local/vgpu' },
      'mps-pipe-dir': { type: 'string', default: '/tmp/nvidia-mps' },
      'scheduler-name': { type: 'string', multiple: true, default: ['tessera-scheduler'] },
      host: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string', default: '9400' },
      'health-interval': { type: 'string', default: '5' },
      'kubelet-check-interval': { type: 'string', default: '1' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  const nodeName = values['node-name'] ?? process.env.NODE_NAME;
  if (!nodeName) throw new UsageError('--node-name (or $NODE_NAME) is required', SERVE_USAGE);
  const log = pino({
    level: logLevelOf(values['log-level']),
    base: { component: 'tessera-node-agent', node: nodeName },
  });
  const agent = await startAgent({
    nodeName,
    driverRoot: values['driver-root'],
    devicePluginDir: values['device-plugin-dir'],
    podResourcesSocket: values['pod-resources-socket'],
    delivery: oneOf('delivery', values.delivery, ['auto', ...DELIVERY_MODES]),
    cdiKind: values['cdi-kind'],
    cdiDirs: values['cdi-dir'],
    writeCdiSpec: values['write-cdi-spec'] ?? null,
    devRoot: values['dev-root'],
    toolkitConfig: values['toolkit-config'],
    enforcement: oneOf('enforcement', values.enforcement, ['auto', ...ENFORCEMENT_KINDS]),
    hamiCoreDir: values['hami-core-dir'],
    mpsPipeDir: values['mps-pipe-dir'],
    schedulerNames: values['scheduler-name'],
    host: values.host,
    port: portOf(values.port),
    healthIntervalMs: seconds('health-interval', values['health-interval']),
    kubeletCheckIntervalMs: seconds('kubelet-check-interval', values['kubelet-check-interval']),
    kubeconfig: loadKubeconfig(values.kubeconfig, values.context),
    log,
  });
  await untilSignal();
  log.info('shutting down');
  await agent.close();
  return 0;
}

/** The fleet's manager side (docs/fleet.md): the MultiKueue dispatcher and the job webhook, in one process. */
async function serveDispatcher(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_OPTIONS,
      port: { type: 'string', default: '9443' },
      'kueue-namespace': { type: 'string', default: 'kueue-system' },
      interval: { type: 'string', default: '2' },
    },
  });
  if (!values['policy-dir']) throw new UsageError('--policy-dir is required', SERVE_USAGE);
  const port = portOf(values.port);
  const intervalMs = seconds('interval', values.interval);
  const log = pino({ level: logLevelOf(values['log-level']), base: { component: 'tessera-dispatcher' } });
  const kubeconfig = loadKubeconfig(values.kubeconfig, values.context);
  const policies = new PolicyStore(values['policy-dir'], log, values['policy-cache-dir'] ?? null);
  policies.reload();
  const policy = () => policies.current();
  // The webhook first: a start that cannot serve (TLS files, port) exits before anything else runs.
  const hook = await startJobWebhook({
    host: values.host,
    port,
    ...tls(values['tls-cert'], values['tls-key']),
    policy,
    namespaceTenant: namespaceTenantFrom(new KubeJson(kubeconfig)),
    log,
  });
  policies.watch();
  const dispatcher = startDispatcher({
    kubeconfig,
    policy,
    kueueNamespace: values['kueue-namespace'],
    intervalMs,
    log,
  });
  log.info({ url: hook.url, policy: policies.status().revision }, 'dispatcher and job webhook serving');
  await untilSignal();
  log.info('shutting down');
  dispatcher.stop();
  policies.close();
  await hook.close();
  return 0;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === 'dispatcher') return serveDispatcher(rest);
  if (what === 'node-agent') return serveNodeAgent(rest);
  if (what === 'webhook') return serveWebhook(rest);
  if (what === 'extender') return serveExtender(rest);
  throw new UsageError(`unknown server "${what ?? ''}"`, SERVE_USAGE);
}
