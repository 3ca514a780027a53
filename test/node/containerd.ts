// containerd 2 for the real node, built from the Go module proxy at a pinned release into .cache/containerd/<version>/
// (first run only; the Go build and module caches are shared with every other build). Only what the node runs:
// containerd, ctr and the runc shim. Debian's runc stays the OCI runtime.
//
// Build settings follow the release Makefile of github.com/containerd/containerd/v2@v2.4.2 (Makefile, Makefile.linux):
// tags `urfave_cli_no_docs` plus the snapshotters this machine has no use for left out (`no_btrfs`, which also needs
// cgo, `no_devmapper`, `no_zfs`), the version stamped into `version.Version`/`version.Package`, `-s -w`. CGO is off, as
// the Makefile builds the shim (SHIM_CGO_ENABLED=0), which also makes containerd itself static.

import { join } from 'node:path';
import { ensureGoInstalled } from '../controlplane/go-install.ts';

/** The containerd release the real node runs. Kubernetes 1.38 needs 2.x; 2.x is the first with CDI always on. */
export const CONTAINERD_VERSION = 'v2.4.2';
const MODULE = 'github.com/containerd/containerd/v2';

export interface ContainerdBinaries {
  readonly containerd: string;
  readonly ctr: string;
  readonly shim: string;
  readonly version: string;
}

export function ensureContainerd(log: (line: string) => void = () => {}): ContainerdBinaries {
  const dir = ensureGoInstalled(
    {
      name: 'containerd',
      version: CONTAINERD_VERSION,
      packages: [`${MODULE}/cmd/containerd`, `${MODULE}/cmd/ctr`, `${MODULE}/cmd/containerd-shim-runc-v2`],
      tags: ['urfave_cli_no_docs', 'no_btrfs', 'no_devmapper', 'no_zfs'],
      ldflags: `-s -w -X ${MODULE}/version.Version=${CONTAINERD_VERSION} -X ${MODULE}/version.Package=${MODULE}`,
    },
    log,
  );
  return {
    containerd: join(dir, 'containerd'),
    ctr: join(dir, 'ctr'),
    shim: join(dir, 'containerd-shim-runc-v2'),
    version: CONTAINERD_VERSION,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureContainerd((l) => console.log(l));
  console.log(`containerd ${b.version}: ${b.containerd}`);
}
