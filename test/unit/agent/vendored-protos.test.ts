// The kubelet protos under agent/proto are the upstream files of k8s.io/kubelet at the release the control plane pins
// (test/controlplane/go.mod: k8s.io/kubernetes v1.37.2, whose staging k8s.io/kubelet is v0.37.2), unchanged. Where the
// Go module cache holds that module (`go mod download` in test/controlplane, done by npm run build:cluster), the copies
// must equal it byte for byte; where it does not, the test checks the pin instead.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../../../', import.meta.url).pathname;
const goMod = readFileSync(join(root, 'test/controlplane/go.mod'), 'utf8');

function moduleCache(): string | null {
  if (process.env.GOMODCACHE) return process.env.GOMODCACHE;
  for (const go of ['go', '/usr/local/go/bin/go']) {
    try {
      return execFileSync(go, ['env', 'GOMODCACHE'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // try the next
    }
  }
  return null;
}

t.test('the pinned Kubernetes release is the one the protos were copied from', async (t) => {
  const pinned = /k8s\.io\/kubernetes v1\.(\d+)\.(\d+)/.exec(goMod);
  t.ok(pinned, 'go.mod pins k8s.io/kubernetes');
  t.equal(
    `v0.${pinned![1]}.${pinned![2]}`,
    'v0.37.2',
    'k8s.io/kubelet v0.37.2 matches the pin; re-copy the protos when the pin moves',
  );
});

t.test('the vendored protos equal the module’s', async (t) => {
  const cache = moduleCache();
  const dir = cache ? join(cache, 'k8s.io/kubelet@v0.37.2') : null;
  if (!dir || !existsSync(dir)) {
    t.pass('k8s.io/kubelet@v0.37.2 is not in the Go module cache here; nothing to compare');
    return;
  }
  for (const [mine, theirs] of [
    ['agent/proto/deviceplugin/v1beta1/api.proto', 'pkg/apis/deviceplugin/v1beta1/api.proto'],
    ['agent/proto/podresources/v1/api.proto', 'pkg/apis/podresources/v1/api.proto'],
    ['agent/proto/LICENSE', 'LICENSE'],
  ] as const) {
    t.equal(readFileSync(join(root, mine), 'utf8'), readFileSync(join(dir, theirs), 'utf8'), mine);
  }
});
