// Builds promtool and the Prometheus server from the Prometheus Go module at a pinned version into
// .cache/prometheus/<version>/ (first run only). promtool unit-tests the recording rules and parses the dashboard's
// queries; the server scrapes Tessera in the soak.

import { join } from 'node:path';
import { ensureGoInstalled } from '../controlplane/go-install.ts';

/** github.com/prometheus/prometheus tags its Go module v0.<minor>.<patch> for release v3.<minor>.<patch>. */
export const PROMETHEUS_MODULE_VERSION = 'v0.316.0';

export interface PrometheusBinaries {
  readonly promtool: string;
  readonly prometheus: string;
  readonly version: string;
}

export function ensurePrometheus(log: (line: string) => void = () => {}): PrometheusBinaries {
  const dir = ensureGoInstalled(
    {
      name: 'prometheus',
      version: PROMETHEUS_MODULE_VERSION,
      packages: ['github.com/prometheus/prometheus/cmd/promtool', 'github.com/prometheus/prometheus/cmd/prometheus'],
    },
    log,
  );
  return { promtool: join(dir, 'promtool'), prometheus: join(dir, 'prometheus'), version: PROMETHEUS_MODULE_VERSION };
}

if (import.meta.url === `file://${process.argv[1]}`)
  console.log(JSON.stringify(ensurePrometheus((l) => console.log(l))));
