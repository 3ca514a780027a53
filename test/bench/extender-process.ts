// The extender as its own process for the benchmarks, as it runs in a cluster: `tessera serve extender` on a loopback
// port with the extender's service-account identity, waited for until ready (or failed with why).

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type LocalCluster } from '../controlplane/cluster.ts';

export interface ExtenderProcessOptions {
  /** Node.js flags before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** 'file': its output into the cluster folder's extender.log (default); 'inherit': onto this process's. */
  readonly output?: 'file' | 'inherit';
}

export async function startExtenderProcess(
  cluster: LocalCluster,
  options: ExtenderProcessOptions = {},
): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const toFile = (options.output ?? 'file') === 'file';
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      fileURLToPath(new URL('../../cli/tessera.ts', import.meta.url)),
      'serve',
      'extender',
      '--kubeconfig',
      cluster.kubeconfigFor('system:serviceaccount:tessera-system:tessera-extender'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
    ],
    { stdio: toFile ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'] },
  );
  if (toFile) {
    const out = createWriteStream(join(cluster.dir, 'extender.log'));
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
  }
  // The harness kills its own children on exit and on SIGINT/SIGTERM (process.exit); this one too.
  process.once('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the extender exited with ${child.exitCode}; see ${cluster.dir}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return { port, child };
    if (Date.now() > deadline) throw new Error('the extender did not become ready within 2 minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
}
