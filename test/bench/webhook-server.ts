// The webhook process the benchmark drives: HTTPS on loopback with the example policy and a synthetic cluster view.
// Started by webhook.bench.ts as a child so that server and load generator do not share a core.

import { pino } from 'pino';
import { startWebhook } from '../../webhook/server.ts';
import { benchView } from './webhook-fixtures.ts';

const [policyDir, certFile, keyFile, podCount] = process.argv.slice(2) as [string, string, string, string?];
const hook = await startWebhook({
  policyDir,
  host: '127.0.0.1',
  port: 0,
  tls: { certFile, keyFile },
  view: benchView(Number(podCount ?? 2000)),
  systemUsers: [],
  log: pino({ level: 'warn' }),
});
process.send?.({ port: hook.port });
process.on('disconnect', () => {
  void hook.close().then(() => process.exit(0));
});
