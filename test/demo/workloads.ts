// The demo's cast: a GPU fleet that matches the example policy's pools, and tenant workloads, good and bad.

import type { KubePod } from '../../core/kube-objects.ts';

export interface DemoNode {
  readonly name: string;
  readonly pool: string;
  readonly labels: Record<string, string>;
  readonly resources: Record<string, string>;
}

const gfd = (product: string, count: number, memory: number, extra: Record<string, string> = {}) => ({
  'nvidia.com/gpu.product': product,
  'nvidia.com/gpu.count': String(count),
  'nvidia.com/gpu.memory': String(memory),
  ...extra,
});

export const FLEET: readonly DemoNode[] = [
  ...['h100-0', 'h100-1'].map((name) => ({
    name,
    pool: 'shared-h100',
    labels: {
      ...gfd('NVIDIA-H100-80GB-HBM3', 8, 81559, { 'nvidia.com/gpu.sharing-strategy': 'none' }),
      'tessera.io/sharing': 'fraction',
    },
    resources: { cpu: '192', memory: '2Ti', pods: '110' },
  })),
  ...['a100-0', 'a100-1'].map((name) => ({
    name,
    pool: 'a100-mig',
    labels: gfd('NVIDIA-A100-SXM4-80GB', 8, 81920, {
      'nvidia.com/mig.strategy': 'mixed',
      'nvidia.com/mig.config': 'all-balanced',
      'nvidia.com/mig-1g.10gb.count': '16',
      'nvidia.com/mig-2g.20gb.count': '8',
      'nvidia.com/mig-3g.40gb.count': '8',
    }),
    resources: {
      cpu: '128',
      memory: '1Ti',
      pods: '110',
      'nvidia.com/mig-1g.10gb': '16',
      'nvidia.com/mig-2g.20gb': '8',
      'nvidia.com/mig-3g.40gb': '8',
    },
  })),
  ...['l4-0', 'l4-1'].map((name) => ({
    name,
    pool: 'l4-timesliced',
    labels: gfd('NVIDIA-L4', 4, 23034, {
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'nvidia.com/gpu.replicas': '4',
    }),
    resources: { cpu: '64', memory: '256Gi', pods: '110', 'nvidia.com/gpu.shared': '16' },
  })),
  {
    name: 'eu-h100-0',
    pool: 'sovereign-eu',
    labels: {
      ...gfd('NVIDIA-H100-80GB-HBM3', 8, 81559, { 'nvidia.com/gpu.sharing-strategy': 'none' }),
      'topology.kubernetes.io/region': 'eu-central',
    },
    resources: { cpu: '192', memory: '2Ti', pods: '110', 'nvidia.com/gpu': '8' },
  },
  {
    // A KubeVirt node in the GPU Operator's vm-passthrough mode: NVIDIA's KubeVirt device plugin advertises its H100s
    // under their PCI-derived name, KubeVirt's device plugins the virtualization devices.
    name: 'vm-h100-0',
    pool: 'vm-h100',
    labels: {
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'nvidia.com/gpu.workload.config': 'vm-passthrough',
      'kubevirt.io/schedulable': 'true',
    },
    resources: {
      cpu: '192',
      memory: '2Ti',
      pods: '110',
      'nvidia.com/GH100_H100_SXM5_80GB': '8',
      'devices.kubevirt.io/kvm': '1k',
      'devices.kubevirt.io/tun': '1k',
      'devices.kubevirt.io/vhost-net': '1k',
    },
  },
];

export interface Submission {
  readonly user: 'bob' | 'carol' | 'mallory';
  readonly what: string;
  readonly pod: KubePod;
}

function workload(
  namespace: string,
  name: string,
  annotations: Record<string, string>,
  options: { image?: string; labels?: Record<string, string>; edit?: (p: KubePod) => void } = {},
): KubePod {
  const p: KubePod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: options.labels ?? { team: 'ml', 'cost-center': '4200' }, annotations },
    spec: {
      runtimeClassName: 'nvidia',
      containers: [
        {
          name: 'main',
          image: options.image ?? 'registry.acme.example/train:1',
          resources: { requests: { cpu: '2', memory: '8Gi' } },
        },
      ],
    },
  };
  options.edit?.(p);
  return p;
}

const eu = 'registry.eu.acme.example/risk-model:3';

export const SUBMISSIONS: readonly Submission[] = [
  ...[0, 1, 2, 3, 4, 5].map((i) => ({
    user: 'bob' as const,
    what: 'notebook, a quarter of an H100',
    pod: workload('vision', `notebook-${i}`, { 'tessera.io/gpu-fraction': '0.25' }),
  })),
  ...[0, 1, 2].map((i) => ({
    user: 'bob' as const,
    what: 'fine-tune, half an H100 with 30Gi',
    pod: workload('nlp', `finetune-${i}`, { 'tessera.io/gpu-fraction': '0.5', 'tessera.io/gpu-memory': '30Gi' }),
  })),
  {
    user: 'bob',
    what: 'training, 4 NVLink-connected H100s',
    pod: workload('nlp', 'train-4x', { 'tessera.io/gpu-count': '4', 'tessera.io/topology': 'nvlink' }),
  },
  ...[0, 1, 2, 3].map((i) => ({
    user: 'bob' as const,
    what: 'inference, 0.25 on the MIG pool',
    pod: workload('vision', `mig-infer-${i}`, { 'tessera.io/pool': 'a100-mig', 'tessera.io/gpu-fraction': '0.25' }),
  })),
  {
    user: 'bob',
    what: 'explicit MIG 3g.40gb',
    pod: workload('vision', 'mig-3g', { 'tessera.io/pool': 'a100-mig', 'tessera.io/mig-profile': '3g.40gb' }),
  },
  ...[0, 1, 2, 3, 4].map((i) => ({
    user: 'bob' as const,
    what: 'batch scoring, a time-sliced L4 replica',
    pod: workload('vision', `ts-batch-${i}`, { 'tessera.io/pool': 'l4-timesliced', 'tessera.io/gpu-fraction': '0.25' }),
  })),
  ...[0, 1].map((i) => ({
    user: 'carol' as const,
    what: 'EU risk model, a whole sovereign GPU',
    pod: workload('risk', `risk-serve-${i}`, { 'tessera.io/gpu-count': '1' }, { image: eu }),
  })),
  {
    user: 'carol',
    what: 'EU risk, a shared quarter (isolated tenant)',
    pod: workload(
      'risk',
      'risk-shared',
      { 'tessera.io/pool': 'shared-h100', 'tessera.io/gpu-fraction': '0.25' },
      { image: eu },
    ),
  },
  // The bad ones.
  {
    user: 'carol',
    what: 'image from Docker Hub in the EU tenant',
    pod: workload(
      'risk',
      'risk-dockerhub',
      { 'tessera.io/gpu-count': '1' },
      { image: 'docker.io/library/python:3.13' },
    ),
  },
  {
    user: 'bob',
    what: 'GPU in a namespace without a tenant',
    pod: workload('scratch', 'stray', { 'tessera.io/gpu-fraction': '0.5' }),
  },
  {
    user: 'bob',
    what: 'half an L4 on a 4-replica time-slicing pool',
    pod: workload('vision', 'ts-too-big', { 'tessera.io/pool': 'l4-timesliced', 'tessera.io/gpu-fraction': '0.5' }),
  },
  {
    user: 'bob',
    what: 'a fraction of 1.5',
    pod: workload('vision', 'bad-fraction', { 'tessera.io/gpu-fraction': '1.5' }),
  },
  {
    user: 'mallory',
    what: 'forged assignment to grab GPU 0',
    pod: workload('vision', 'forged', {
      'tessera.io/gpu-fraction': '0.1',
      'tessera.io/assignment': '{"node":"h100-0","gpus":[{"index":0,"milli":1000,"memoryMiB":81559}]}',
    }),
  },
  {
    user: 'mallory',
    what: 'pinned to a node, around the scheduler',
    pod: workload(
      'vision',
      'node-pinned',
      { 'tessera.io/gpu-fraction': '0.5' },
      {
        edit: (p) => {
          p.spec!.nodeName = 'h100-1';
        },
      },
    ),
  },
  {
    user: 'mallory',
    what: 'NVIDIA_VISIBLE_DEVICES=all',
    pod: workload(
      'vision',
      'see-all-gpus',
      { 'tessera.io/gpu-fraction': '0.25' },
      {
        edit: (p) => {
          p.spec!.containers![0]!.env = [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }];
        },
      },
    ),
  },
  {
    user: 'bob',
    what: 'priority class of another tenant',
    pod: workload(
      'vision',
      'wrong-priority',
      { 'tessera.io/gpu-fraction': '0.5' },
      {
        edit: (p) => {
          p.spec!.priorityClassName = 'payments-serving';
        },
      },
    ),
  },
  {
    user: 'bob',
    what: 'no chargeback labels (warn only)',
    pod: workload('vision', 'unlabelled', { 'tessera.io/gpu-fraction': '0.25' }, { labels: {} }),
  },
  {
    user: 'bob',
    what: '8 GPUs, over the research quota',
    pod: workload('nlp', 'too-much', { 'tessera.io/gpu-count': '8' }),
  },
];

export const DEMO_USERS = {
  bob: 'bob@acme.example',
  carol: 'carol@acme.example',
  mallory: 'mallory@acme.example',
} as const;
