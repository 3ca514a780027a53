// The KubeSchedulerConfiguration that manifests/base/scheduler.yaml ships, made runnable against the local control
// plane: the e2e suite, the soak and the benchmarks run what users install, not a hand-written copy of it.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

export const SHIPPED_SCHEDULER_MANIFEST = fileURLToPath(
  new URL('../../manifests/base/scheduler.yaml', import.meta.url),
);

export type SchedulerConfig = Record<string, unknown> & {
  profiles?: Record<string, unknown>[];
  extenders?: Record<string, unknown>[];
};

/** The KubeSchedulerConfiguration in the ConfigMap of a scheduler manifest that carries a config.yaml. */
export function shippedSchedulerConfig(manifest = SHIPPED_SCHEDULER_MANIFEST): SchedulerConfig {
  for (const doc of parseAllDocuments(readFileSync(manifest, 'utf8'))) {
    const o = doc.toJS() as { kind?: string; data?: Record<string, string> } | null;
    if (o?.kind === 'ConfigMap' && o.data?.['config.yaml'] !== undefined) {
      const [inner] = parseAllDocuments(o.data['config.yaml']);
      return inner!.toJS() as SchedulerConfig;
    }
  }
  throw new Error(`${manifest}: no ConfigMap with config.yaml`);
}

export interface LocalSchedulerOptions {
  /** The extender's httpTimeout (a Go duration); the shipped one when unset. */
  readonly httpTimeout?: string;
  /** percentageOfNodesToScore; the shipped one when unset. */
  readonly percentageOfNodesToScore?: number;
}

/**
 * The shipped configuration with its one extender at a local port over plain HTTP; the harness supplies the client
 * connection, and one scheduler process needs no leader election.
 */
export function localSchedulerConfig(
  extenderPort: number,
  options: LocalSchedulerOptions = {},
  shipped: SchedulerConfig = shippedSchedulerConfig(),
): SchedulerConfig {
  const config = structuredClone(shipped);
  delete config.leaderElection;
  delete config.clientConnection;
  if (options.percentageOfNodesToScore !== undefined)
    config.percentageOfNodesToScore = options.percentageOfNodesToScore;
  const extenders = config.extenders ?? [];
  if (extenders.length !== 1) throw new Error(`the shipped configuration has ${extenders.length} extenders, not 1`);
  const extender = extenders[0]!;
  extender.urlPrefix = `http://127.0.0.1:${extenderPort}`;
  extender.enableHTTPS = false;
  delete extender.tlsConfig;
  if (options.httpTimeout !== undefined) extender.httpTimeout = options.httpTimeout;
  return config;
}

export const schedulerConfigYaml = (config: SchedulerConfig): string => stringify(config);
