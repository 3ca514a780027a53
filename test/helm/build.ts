// Builds helm (helm.sh/helm/v3, cmd/helm) at the pinned version into .cache/helm/<version>/helm (about 5 minutes cold
// on 2 cores, first run only). The chart's tests render charts/tessera with it (helm lint, helm template) and compare
// it with the kustomize base.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureGoInstalled } from '../controlplane/go-install.ts';

/** The Helm release the chart is tested with; bump it here (and HELM_KUBERNETES_MINOR with it). */
export const HELM_VERSION = 'v3.22.0';

/**
 * The Kubernetes minor version of the client-go that HELM_VERSION's go.mod requires (v0.37 for 1.37). Helm's release
 * Makefile stamps it into the binary with -X: it is the cluster version `helm template` assumes without a cluster and
 * the version `helm lint` checks API deprecations against. Without the stamps both would say 1.20.
 */
export const HELM_KUBERNETES_MINOR = '37';

export interface HelmBinary {
  readonly dir: string;
  readonly helm: string;
  readonly version: string;
}

/** Returns the helm binary, building it first if this version has not been built on this machine. */
export function ensureHelm(log: (line: string) => void = () => {}): HelmBinary {
  const stamps = [
    `helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
    'helm.sh/helm/v3/internal/version.gitTreeState=clean',
    'helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
    `helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_KUBERNETES_MINOR}`,
    'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
    `helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_KUBERNETES_MINOR}`,
  ];
  const dir = ensureGoInstalled(
    {
      name: 'helm',
      version: HELM_VERSION,
      packages: ['helm.sh/helm/v3/cmd/helm'],
      ldflags: `-s -w ${stamps.map((s) => `-X ${s}`).join(' ')}`,
    },
    log,
  );
  const helm = join(dir, 'helm');
  const reported = execFileSync(helm, ['version', '--template', '{{.Version}}'], { encoding: 'utf8' }).trim();
  if (reported !== HELM_VERSION)
    throw new Error(
      `${helm} says it is ${reported}, not ${HELM_VERSION}: it was built without the version stamps; delete ${dir} to rebuild it`,
    );
  return { dir, helm, version: HELM_VERSION };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureHelm((l) => console.log(l));
  console.log(`helm ${b.version} in ${b.dir}`);
}
