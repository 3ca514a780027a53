// Synthetic but realistic admission traffic for the webhook benchmark: 40 tenant namespaces with 2,000 running pods
// (or as many as asked: the scale run caches 150,000),
// and a mix of reviews (GPU pod creates in every pool, CPU pods, namespace updates).

import { staticClusterView, type ClusterView } from '../../core/admission/cluster-view.ts';
import type { AdmissionReview } from '../../core/admission/request.ts';
import type { KubeNamespace, KubePod } from '../../core/kube-objects.ts';

export function benchView(podCount = 2000): ClusterView {
  const namespaces: KubeNamespace[] = [];
  const pods: KubePod[] = [];
  for (let i = 0; i < 40; i++)
    namespaces.push({
      metadata: { name: `team-${i}`, labels: { 'tessera.io/tenant': i % 4 === 0 ? 'payments-ml' : 'research' } },
    });
  for (let i = 0; i < podCount; i++) {
    pods.push({
      metadata: {
        name: `p${i}`,
        namespace: `team-${i % 40}`,
        uid: `uid-${i}`,
        annotations: { 'tessera.io/pool': 'shared-h100' },
      },
      spec: {
        containers: [
          {
            name: 'c',
            image: 'registry.example/x',
            resources: { limits: i % 3 === 0 ? { 'tessera.io/gpu-milli': '1' } : { cpu: '1' } },
          },
        ],
      },
      status: { phase: 'Running' },
    });
  }
  return staticClusterView(namespaces, pods);
}

let uid = 0;

export function reviews(): AdmissionReview[] {
  const pod = (namespace: string, annotations: Record<string, string>): AdmissionReview => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `bench-${++uid}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'bob@acme.example', groups: ['researchers', 'system:authenticated'] },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: 'train-',
          namespace,
          labels: { team: 'vision', 'cost-center': '1234', app: 'train' },
          annotations,
        },
        spec: {
          schedulerName: 'default-scheduler',
          containers: [
            {
              name: 'main',
              image: 'registry.eu.acme.example/train:1',
              resources: { requests: { cpu: '4', memory: '16Gi' } },
            },
            { name: 'sidecar', image: 'registry.eu.acme.example/log:1' },
          ],
          tolerations: [
            { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
          ],
        },
      },
    },
  });
  return [
    pod('team-1', { 'tessera.io/gpu-fraction': '0.25' }),
    pod('team-2', { 'tessera.io/gpu-fraction': '0.25', 'tessera.io/pool': 'a100-mig' }),
    pod('team-3', { 'tessera.io/gpu-fraction': '0.25', 'tessera.io/pool': 'l4-timesliced' }),
    pod('team-4', { 'tessera.io/gpu-count': '1' }),
    pod('team-5', {}),
    {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `bench-${++uid}`,
        kind: { group: '', version: 'v1', kind: 'Namespace' },
        operation: 'UPDATE',
        userInfo: { username: 'alice@acme.example', groups: ['platform-admins'] },
        object: { metadata: { name: 'team-9', labels: { 'tessera.io/tenant': 'research', x: 'y' } } },
        oldObject: { metadata: { name: 'team-9', labels: { 'tessera.io/tenant': 'research' } } },
      },
    },
  ];
}
