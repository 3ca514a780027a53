// Allocate latency of Tessera's node agent in the fake-kubelet harness (test/fixtures/node-agent-rig.ts): the kubelet
// side calls GetPreferredAllocation then Allocate for each pod over unix-socket gRPC, as the device manager does; the
// agent lists PodResources, finds the pod, checks its assignment and answers. Prints p50/p99 of the Allocate RPC and
// of the whole admission. Not a real kubelet: the real-node test measures that.
//   node test/bench/node-agent.bench.ts [--pods 400] [--gpus 8]

import { parseArgs } from 'node:util';
import { nodeAgentRig } from '../fixtures/node-agent-rig.ts';
import { eventually } from '../fixtures/fake-apiserver.ts';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '400' }, gpus: { type: 'string', default: '8' } },
});
const pods = Number(values.pods);
const gpus = Number(values.gpus);

const rig = await nodeAgentRig(gpus);
await rig.startAgent({ delivery: 'cdi-cri' });
await eventually('registered', () => rig.kubelet.healthy === gpus * 1000);

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const admissions: number[] = [];
// Four 250-milli pods per GPU fill the node; then they finish and the next round starts, so the kubelet always lists
// up to gpus*4 pods.
for (let i = 0; i < pods; i++) {
  const slot = i % (gpus * 4);
  if (slot === 0 && i > 0)
    for (let j = i - gpus * 4; j < i; j++) {
      rig.kubelet.forget('research-a', `b-${j}`);
      rig.api.remove('pods', `b-${j}`, 'research-a');
    }
  const p = rig.fractionPod(`b-${i}`, 250, [{ index: slot % gpus, milli: 250 }]);
  rig.api.put('pods', p);
  const started = performance.now();
  const r = await rig.kubelet.admit(p);
  admissions.push(performance.now() - started);
  if (!r.ok) throw new Error(`pod b-${i}: ${r.error}`);
}
const both = (xs: number[]) => ({ p50: +quantile(xs, 0.5).toFixed(2), p99: +quantile(xs, 0.99).toFixed(2) });
console.log(
  JSON.stringify({
    pods,
    gpus,
    allocate_rpc_ms: both(rig.kubelet.allocateMs),
    preferred_allocation_rpc_ms: both(rig.kubelet.preferredMs),
    admission_ms: both(admissions),
  }),
);
await rig.close();
