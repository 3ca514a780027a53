// The kubeconfig of a command that talks to a live cluster (explain, audit, serve): --kubeconfig FILE, else $KUBECONFIG,
// else ~/.kube/config, else the pod's service account; --context picks a context. Each way of failing says what was
// looked for and how to fix it, instead of letting the client fall back to http://localhost:8080 and fail later with
// an unrelated connection or TLS error.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { describeApiError } from '../server/watched-resource.ts';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

function load(kc: KubeConfig, file: string, how: string): void {
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new Error(`cannot read the kubeconfig ${file} (${how}): ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function loadKubeconfig(file: string | undefined, context: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  const fix = 'pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config';
  if (file !== undefined) {
    if (!existsSync(file)) throw new Error(`--kubeconfig ${file}: no such file; ${fix}`);
    load(kc, file, '--kubeconfig');
  } else if (process.env.KUBECONFIG) {
    const files = process.env.KUBECONFIG.split(delimiter).filter((f) => f !== '');
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length > 0) throw new Error(`KUBECONFIG names ${missing.join(', ')}, which does not exist; ${fix}`);
    load(kc, files[0]!, 'KUBECONFIG');
    for (const f of files.slice(1)) {
      const more = new KubeConfig();
      load(more, f, 'KUBECONFIG');
      kc.mergeConfig(more);
    }
  } else if (existsSync(join(homedir(), '.kube', 'config'))) {
    load(kc, join(homedir(), '.kube', 'config'), '~/.kube/config');
  } else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
  } else {
    throw new Error(`no kubeconfig found (no --kubeconfig, no KUBECONFIG, no ~/.kube/config, not in a pod); ${fix}`);
  }
  const contexts = kc.getContexts().map((c) => c.name);
  if (context !== undefined) {
    if (!contexts.includes(context))
      throw new Error(
        `--context ${context}: the kubeconfig has no such context (it has: ${contexts.join(', ') || 'none'})`,
      );
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster())
    throw new Error(
      `the kubeconfig's current context ${JSON.stringify(kc.getCurrentContext())} names no cluster; pass --context NAME (contexts: ${contexts.join(', ') || 'none'})`,
    );
  return kc;
}

/** Runs API calls of a command, turning a failure into one line that names the API server and the cause. */
export async function fromApi<T>(kc: KubeConfig, what: string, calls: () => Promise<T>): Promise<T> {
  try {
    return await calls();
  } catch (e) {
    throw new Error(
      `cannot ${what} from the Kubernetes API at ${kc.getCurrentCluster()?.server}: ${describeApiError(e)}`,
    );
  }
}
