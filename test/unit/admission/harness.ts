// Shared scaffolding for admission tests: the example policy, a small cluster, and helpers that run the two stages
// the way the API server does (mutate, apply the patch, validate the result).

import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import { staticClusterView, type ClusterView } from '../../../core/admission/cluster-view.ts';
import type { AdmissionRequest, UserInfo } from '../../../core/admission/request.ts';
import { mutateRequest } from '../../../core/admission/mutate.ts';
import { validateRequest, type Verdict } from '../../../core/admission/validation.ts';
import type { KubeNamespace, KubePod } from '../../../core/kube-objects.ts';
import { compilePolicy } from '../../../core/policy/compile.ts';
import type { Policy } from '../../../core/policy/model.ts';

export const EXAMPLE_POLICY_TEXT = readFileSync(new URL('../../../../shared/examples/policy.yaml', import.meta.url), 'utf8');

export function examplePolicy(text = EXAMPLE_POLICY_TEXT): Policy {
  const r = compilePolicy([{ name: 'policy.yaml', text }]);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

export const ns = (name: string, tenant?: string): KubeNamespace => ({ metadata: { name, labels: tenant ? { 'tessera.io/tenant': tenant } : {} } });
export const NAMESPACES = [ns('research-a', 'research'), ns('research-b', 'research'), ns('pay', 'payments-ml'), ns('plain'), ns('ghost', 'nobody')];
export const CONFIG = { systemUsers: ['system:serviceaccount:tessera-system:tessera-extender'] };
export const BOB: UserInfo = { username: 'bob@acme.example', groups: ['researchers', 'system:authenticated'] };
export const ALICE: UserInfo = { username: 'alice@acme.example', groups: ['platform-admins'] };
export const EXTENDER: UserInfo = { username: 'system:serviceaccount:tessera-system:tessera-extender', groups: ['system:serviceaccounts'] };

export function view(pods: KubePod[] = []): ClusterView {
  return staticClusterView(NAMESPACES, pods);
}

let counter = 0;
export function podRequest(pod: KubePod, options: { operation?: 'CREATE' | 'UPDATE'; old?: KubePod; user?: UserInfo; subResource?: string } = {}): AdmissionRequest {
  return {
    uid: `req-${++counter}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    ...(options.subResource ? { subResource: options.subResource } : {}),
    namespace: pod.metadata?.namespace ?? 'default',
    name: pod.metadata?.name ?? '',
    operation: options.operation ?? 'CREATE',
    userInfo: options.user ?? BOB,
    object: pod,
    ...(options.old ? { oldObject: options.old } : {}),
  };
}

export interface Admitted {
  readonly pod: KubePod;
  readonly denial: string | null;
  readonly verdict: Verdict | null;
  readonly patch: jsonPatch.Operation[];
}

/** Mutate, apply the patch, validate: what the API server does with Tessera's two webhooks. */
export function admit(pod: KubePod, policy: Policy, cluster: ClusterView = view(), user: UserInfo = BOB): Admitted {
  const m = mutateRequest(podRequest(pod, { user }), policy, cluster);
  if (m.denial !== null) return { pod, denial: m.denial, verdict: null, patch: [] };
  const mutated = jsonPatch.applyPatch(structuredClone(pod), m.patch, true, false).newDocument as KubePod;
  const verdict = validateRequest(podRequest(mutated, { user }), policy, cluster, CONFIG);
  return { pod: mutated, denial: verdict.allowed ? null : verdict.violations.filter((v) => v.action === 'enforce').map((v) => `[${v.rule}] ${v.message}`).join('\n'), verdict, patch: m.patch };
}
