// The countable resource a Job template must carry so that Kueue counts what Tessera will count. Kueue counts only the
// resources written in a job's template; a job that asks with Tessera's annotations (tessera.io/gpu-fraction,
// gpu-memory, gpu-count, mig-profile) writes none, so the manager's and the workers' ClusterQueues would count it as
// nothing. On the MANAGER, at the Job's creation, the template's first container gets tessera.io/gpu-milli: the job's
// GPU-equivalents per pod, as Tessera's webhook will weigh it in the first of the tenant's pools that can meet it.
// Only there: MultiKueue's worker Job is a copy of the manager's, and a worker Job whose pod sets differ from the
// prebuilt Workload's is finished as OutOfSync (v0.17.0 pkg/controller/jobframework/reconciler.go EquivalentToWorkload
// compares the containers with pkg/util/equality ComparePodSets); annotations are not compared.
// On the worker the pods carry both; Tessera's webhook plans from the annotations and replaces the GPU resources with
// the plan's (core/admission/mutate.ts), which for a share is the same gpu-milli.

import { parseDemand, wantsGpu } from '../demand.ts';
import type { KubeContainer, ObjectMeta, PodSpec } from '../kube-objects.ts';
import { decideGpu } from '../pools/gpu-decision.ts';
import type { Policy, Tenant } from '../policy/model.ts';
import { GPU_MILLI } from '../well-known-names.ts';
import { podOfSet } from './job-ask.ts';

export interface PodTemplate {
  readonly metadata?: ObjectMeta;
  readonly spec?: PodSpec;
}

export type CountableAsk =
  /** The template gets `milli` of tessera.io/gpu-milli on its container `container` (requests and limits). */
  | { readonly kind: 'add'; readonly container: number; readonly milli: number; readonly pool: string }
  /** Nothing to add, and why (already countable, no GPU, or malformed: Tessera's webhook will deny the pods). */
  | { readonly kind: 'keep'; readonly reason: string };

/** GPU-equivalents as whole thousandths, never below what Tessera counts (1/7 of a GPU is 143). */
export function milliOf(equivalents: number): number {
  return Math.ceil(equivalents * 1000 - 1e-6);
}

/** What the template of a job in `tenant`'s namespace must add so that Kueue counts its GPU-equivalents. */
export function countableAsk(template: PodTemplate, namespace: string, tenant: Tenant, policy: Policy): CountableAsk {
  const pod = podOfSet({ name: 'template', count: 1, template }, namespace, 0);
  const parsed = parseDemand(pod, policy.accelerators);
  if (!parsed.ok) return { kind: 'keep', reason: `${parsed.error.field}: ${parsed.error.message}` };
  const demand = parsed.demand;
  if (!wantsGpu(demand)) return { kind: 'keep', reason: 'the template asks for no GPU' };
  const written = [...Object.keys(demand.gpuResources), ...Object.keys(demand.devices)];
  if (written.length > 0)
    return {
      kind: 'keep',
      reason: `the template already asks with resources (${written.join(', ')}), which Kueue counts`,
    };
  if ((template.spec?.containers ?? []).length === 0) return { kind: 'keep', reason: 'the template has no container' };
  const decision = decideGpu(demand, tenant, policy, template.spec?.nodeSelector ?? {});
  if (!decision.ok) return { kind: 'keep', reason: decision.message };
  return { kind: 'add', container: 0, milli: milliOf(decision.plan.equivalents), pool: decision.pool.name };
}

/** The template with the countable resource added (a copy; the input is not changed). */
export function withCountableAsk(template: PodTemplate, ask: CountableAsk): PodTemplate {
  if (ask.kind === 'keep') return template;
  const copy = structuredClone(template) as { metadata?: ObjectMeta; spec?: PodSpec };
  const c = copy.spec?.containers?.[ask.container] as KubeContainer | undefined;
  if (!c) return template;
  const resources = (c.resources ??= {});
  (resources.limits ??= {})[GPU_MILLI] = String(ask.milli);
  (resources.requests ??= {})[GPU_MILLI] = String(ask.milli);
  return copy;
}
