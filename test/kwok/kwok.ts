// KWOK (sigs.k8s.io/kwok) as the kubelet of Tessera's fake GPU nodes in tests, the demo and the benchmarks: it keeps
// the nodes annotated `kwok.tessera.io/node: fake` Ready (status, and a Lease in kube-node-lease) and moves the pods
// bound to them through their lifecycle with the Stages in ./stages/. test/controlplane/cluster.ts runs it.
//
// Pod annotations the Stages read (test-scoped; nothing in Tessera looks at them):
//   kwok.tessera.io/run-for: 30s     the pod ends this long after it started (a Go duration); without it, it runs
//                                    until deleted (a Job's pods end right after they start)
//   kwok.tessera.io/exit: failed     it ends with phase Failed instead of Succeeded (at once without run-for)
//   kwok.tessera.io/exit-code: "137" the exit code of its containers when it fails (default 1)

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The annotation that puts a node under KWOK (--manage-nodes-with-annotation-selector). */
export const KWOK_NODE_ANNOTATION = 'kwok.tessera.io/node';
export const KWOK_NODE_VALUE = 'fake';
export const RUN_FOR_ANNOTATION = 'kwok.tessera.io/run-for';
export const EXIT_ANNOTATION = 'kwok.tessera.io/exit';
export const EXIT_CODE_ANNOTATION = 'kwok.tessera.io/exit-code';

/** The annotations that make a node one of KWOK's. */
export const kwokNodeAnnotations = (): Record<string, string> => ({ [KWOK_NODE_ANNOTATION]: KWOK_NODE_VALUE });

/** How long a pod should run, then how it should end: the annotations the Stages read. */
export function lifecycleAnnotations(
  runFor: string | null,
  exit: 'succeeded' | 'failed' = 'succeeded',
  exitCode?: number,
): Record<string, string> {
  return {
    ...(runFor !== null ? { [RUN_FOR_ANNOTATION]: runFor } : {}),
    ...(exit === 'failed' ? { [EXIT_ANNOTATION]: 'failed' } : {}),
    ...(exitCode !== undefined ? { [EXIT_CODE_ANNOTATION]: String(exitCode) } : {}),
  };
}

export const STAGES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'stages');

export function stageFiles(): string[] {
  return readdirSync(STAGES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(STAGES_DIR, f));
}

export interface KwokArgs {
  readonly kubeconfig: string;
  /** Where KWOK serves /healthz (loopback). */
  readonly serverPort: number;
  /** The node Leases' duration; KWOK renews them every quarter of it. A restarted KWOK takes a node over once the
   * previous process's Lease on it has expired, so a shorter duration makes restarts recover sooner. */
  readonly leaseDurationSeconds?: number;
}

/** The kwok command line: our Stages only, our nodes only, fake addresses that nothing connects to. */
export function kwokArgs(a: KwokArgs): string[] {
  return [
    '--kubeconfig',
    a.kubeconfig,
    ...stageFiles().flatMap((f) => ['-c', f]),
    '--manage-nodes-with-annotation-selector',
    `${KWOK_NODE_ANNOTATION}=${KWOK_NODE_VALUE}`,
    '--node-lease-duration-seconds',
    String(a.leaseDurationSeconds ?? 40),
    // Pod and node IPs only ever appear in status; nothing connects to them.
    '--cidr',
    '10.244.0.0/16',
    '--node-ip',
    '10.0.0.1',
    '--server-address',
    `127.0.0.1:${a.serverPort}`,
  ];
}
