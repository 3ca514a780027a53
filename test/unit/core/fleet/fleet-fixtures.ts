// A two-region fleet for the core/fleet tests: test/fleet/fleet-policy.yaml, and GPU nodes labelled for its pools.

import { readFileSync } from 'node:fs';
import type { KubeNode } from '../../../../core/kube-objects.ts';
import { compilePolicy } from '../../../../core/policy/compile.ts';
import type { Policy } from '../../../../core/policy/model.ts';
import type { WorkloadPodSet } from '../../../../core/fleet/job-ask.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { exclusiveH100, fractionH100 } from '../../../fixtures/nodes.ts';

export const FLEET_POLICY_TEXT = readFileSync(new URL('../../../fleet/fleet-policy.yaml', import.meta.url), 'utf8');

export function fleetPolicy(): Policy {
  const r = compilePolicy([{ name: 'fleet-policy.yaml', text: FLEET_POLICY_TEXT }]);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const REGION = { eu: 'eu-central', us: 'us-east' } as const;

/** A fraction node and a whole-GPU node of `gpus` GPUs each in the region's pools. */
export function regionNodes(region: 'eu' | 'us', gpus = 2): KubeNode[] {
  const labels = (pool: string) => ({ 'tessera.io/pool': pool, 'topology.kubernetes.io/region': REGION[region] });
  const shared = fractionH100(`${region}-shared-0`, gpus, { labels: labels(`${region}-shared`) });
  const whole = exclusiveH100(`${region}-whole-0`, gpus);
  Object.assign(whole.metadata!.labels!, labels(`${region}-whole`));
  return [shared, whole];
}

export function workerState(region: 'eu' | 'us', gpus = 2): SchedulingState {
  const state = new SchedulingState();
  state.setPolicy(fleetPolicy());
  state.upsertNamespace({ metadata: { name: 'bank', labels: { 'tessera.io/tenant': 'bank' } } });
  state.upsertNamespace({ metadata: { name: 'research', labels: { 'tessera.io/tenant': 'research' } } });
  for (const n of regionNodes(region, gpus)) state.upsertNode(n);
  return state;
}

/** A Job's pod set asking for a fraction with Tessera's annotation, its template carrying the same gpu-milli. */
export function fractionSet(fraction: number, count = 1, name = 'main'): WorkloadPodSet {
  const milli = String(Math.round(fraction * 1000));
  return {
    name,
    count,
    template: {
      metadata: { annotations: { 'tessera.io/gpu-fraction': String(fraction) } },
      spec: {
        containers: [
          {
            name: 'train',
            image: 'registry.example/train:1',
            resources: { limits: { 'tessera.io/gpu-milli': milli }, requests: { 'tessera.io/gpu-milli': milli } },
          },
        ],
      },
    },
  };
}

export function wholeSet(gpus: number, count = 1, name = 'main'): WorkloadPodSet {
  return {
    name,
    count,
    template: {
      spec: {
        containers: [
          {
            name: 'train',
            image: 'registry.example/train:1',
            resources: { limits: { 'nvidia.com/gpu': String(gpus) } },
          },
        ],
      },
    },
  };
}

/** A running pod bound to a node, as the extender's informer would feed it. */
