// `tessera serve webhook`: runs a server until SIGTERM, then drains and exits.

import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startWebhook } from '../webhook/server.ts';

export const SERVE_USAGE = `tessera serve webhook --policy-dir DIR [--tls-cert FILE --tls-key FILE] [--host 0.0.0.0] [--port 8443]
                     [--system-user NAME]... [--kubeconfig FILE] [--audit-interval SECONDS] [--log-level info]
  Tessera's own service accounts (--system-user, e.g. system:serviceaccount:tessera-system:tessera-extender) may write
  system-owned annotations. Without --kubeconfig the in-cluster configuration (or $KUBECONFIG) is used.`;

export async function serveCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what !== 'webhook') throw new Error(`unknown server "${what ?? ''}"\n\n${SERVE_USAGE}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      'policy-dir': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      host: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string', default: '8443' },
      'system-user': { type: 'string', multiple: true, default: [] },
      kubeconfig: { type: 'string' },
      'audit-interval': { type: 'string', default: '60' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (!values['policy-dir']) throw new Error(`--policy-dir is required\n\n${SERVE_USAGE}`);
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new Error('--tls-cert and --tls-key go together');
  const log = pino({ level: values['log-level'], base: { component: 'tessera-webhook' } });
  const kc = new KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();
  const hook = await startWebhook({
    policyDir: values['policy-dir'],
    host: values.host,
    port: Number(values.port),
    ...(values['tls-cert'] ? { tls: { certFile: values['tls-cert'], keyFile: values['tls-key']! } } : {}),
    kubeconfig: kc,
    systemUsers: values['system-user'],
    auditIntervalMs: Number(values['audit-interval']) * 1000,
    log,
  });
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  log.info('shutting down');
  await hook.close();
  return 0;
}
