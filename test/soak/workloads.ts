// What the soak's tenants submit, drawn from a seeded stream: fractional, MIG, time-sliced and whole-GPU pods and Jobs
// with run times (KWOK ends them), some failing, some deleted early by their user, some at a priority that preempts,
// a few that can never fit (their user gives up on them) and a few that the webhook must deny. Pure: the same seed gives
// the same submissions.

import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { SeededRandom } from '../../core/simulation/random.ts';
import { lifecycleAnnotations } from '../kwok/kwok.ts';

export const SHAPE_LABEL = 'soak.tessera.io/shape';
export const ROLE_LABEL = 'soak.tessera.io/role';

/** load: churns; resident: runs the whole soak; never-fits: left pending at the end, on purpose. */
export type Role = 'load' | 'resident' | 'never-fits';

export type Shape =
  | 'fraction'
  | 'whole'
  | 'mig'
  | 'time-sliced'
  | 'whole-eu'
  | 'job'
  | 'never-fits'
  | 'bad-fraction'
  | 'bad-priority'
  | 'bad-registry';

export interface Submission {
  readonly namespace: string;
  readonly name: string;
  readonly shape: Shape;
  readonly kind: 'pod' | 'job';
  readonly body: V1Pod | V1Job;
  /** The user deletes it this long after creating it, or never (null). */
  readonly deleteAfterMs: number | null;
  /** The webhook must deny it (a policy rule, not quota). */
  readonly bad: boolean;
}

export interface WorkloadOptions {
  /** Shorter run times, for the short soak. */
  readonly short: boolean;
}

const IMAGE = 'registry.example/train:1';
const EU_IMAGE = 'registry.eu.acme.example/risk/score:3';

interface PodSpecInput {
  readonly name: string;
  readonly namespace: string;
  readonly shape: Shape;
  readonly role: Role;
  readonly annotations: Record<string, string>;
  readonly image?: string;
  readonly priorityClassName?: string | null;
}

export function soakPod(p: PodSpecInput): V1Pod {
  return {
    metadata: {
      name: p.name,
      namespace: p.namespace,
      labels: { team: p.namespace, 'cost-center': '4242', [SHAPE_LABEL]: p.shape, [ROLE_LABEL]: p.role },
      annotations: p.annotations,
    },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      ...(p.priorityClassName ? { priorityClassName: p.priorityClassName } : {}),
      containers: [
        {
          name: 'main',
          image: p.image ?? IMAGE,
          resources: { requests: { cpu: '250m', memory: '512Mi' } },
        },
      ],
    },
  };
}

/** Pods that live through the whole soak (no run time), at the top priority of their tenant so nothing preempts
 * them: the end-of-run comparison of the extender's gauges with the API then has something to compare. */
export function residents(): Submission[] {
  const r = (
    namespace: string,
    name: string,
    shape: Shape,
    annotations: Record<string, string>,
    pc: string | null,
  ) => ({
    namespace,
    name,
    shape,
    kind: 'pod' as const,
    body: soakPod({
      name,
      namespace,
      shape,
      role: 'resident',
      annotations,
      priorityClassName: pc,
      ...(namespace === 'risk' ? { image: EU_IMAGE } : {}),
    }),
    deleteAfterMs: null,
    bad: false,
  });
  return [
    r('vision', 'resident-fraction', 'fraction', { 'tessera.io/gpu-fraction': '0.5' }, 'research-interactive'),
    r('nlp', 'resident-mig', 'mig', { 'tessera.io/mig-profile': '1g.10gb' }, 'research-interactive'),
    r('risk', 'resident-eu', 'whole-eu', { 'tessera.io/gpu-count': '1' }, 'payments-serving'),
    r('risk', 'resident-fraction', 'fraction', { 'tessera.io/gpu-fraction': '0.25' }, 'payments-serving'),
    r('genomics', 'resident-fraction', 'fraction', { 'tessera.io/gpu-fraction': '0.2' }, null),
  ];
}

/** Pods submitted when the load stops, that no node of the fleet can ever hold: they must stay Pending, each with a
 * reason, and the end-of-run check must find that they really do not fit. */
export function neverFits(): Submission[] {
  const n = (namespace: string, name: string, annotations: Record<string, string>) => ({
    namespace,
    name,
    shape: 'never-fits' as const,
    kind: 'pod' as const,
    body: soakPod({ name, namespace, shape: 'never-fits', role: 'never-fits', annotations }),
    deleteAfterMs: null,
    bad: false,
  });
  return [
    // Three whole GPUs: the fraction H100 nodes have two each.
    n('vision', 'never-fits-3-gpus', { 'tessera.io/gpu-count': '3' }),
    // A profile the MIG node's all-balanced layout does not offer.
    n('nlp', 'never-fits-7g', { 'tessera.io/mig-profile': '7g.80gb' }),
  ];
}

const pick = <T>(rng: SeededRandom, items: readonly T[]): T => items[rng.below(items.length)]!;

function weighted<T>(rng: SeededRandom, table: readonly (readonly [T, number])[]): T {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let x = rng.next() * total;
  for (const [v, w] of table) {
    x -= w;
    if (x < 0) return v;
  }
  return table[table.length - 1]![0];
}

type Draw = readonly [string, Shape];

/** Namespace and shape, weighted: research is the busy tenant, payments-ml and genomics share the H100s with it. */
const MIX: readonly (readonly [Draw, number])[] = [
  [['research', 'fraction'], 27],
  [['research', 'whole'], 5],
  [['research', 'mig'], 14],
  [['research', 'time-sliced'], 10],
  [['research', 'job'], 6],
  [['research', 'never-fits'], 1],
  [['research', 'bad-fraction'], 1],
  [['research', 'bad-priority'], 1],
  [['payments-ml', 'fraction'], 10],
  [['payments-ml', 'whole-eu'], 7],
  [['payments-ml', 'bad-registry'], 1],
  [['genomics', 'fraction'], 6],
  [['genomics', 'time-sliced'], 5],
];

/**
 * Milliseconds to add to a run time, from the pod's name (not drawn from the seeded stream, which stays as it was). KWOK
 * counts a run time from status.startTime, which has whole seconds: run times of whole seconds would end every pod on a
 * whole second, as no real workload does, and a sampler whose period is whole seconds (snapshots, Prometheus scrapes)
 * would then see every end at the same phase, which biases GPU-hours measured from it by up to a period per pod.
 */
export function subSecond(name: string): string {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return String((h >>> 0) % 1000).padStart(3, '0');
}

export class WorkloadStream {
  private readonly rng: SeededRandom;
  private readonly o: WorkloadOptions;
  private seq = 0;

  constructor(seed: number, options: WorkloadOptions) {
    this.rng = new SeededRandom(seed);
    this.o = options;
  }

  /** Seconds between arrivals for a mean rate (per second): exponential, so arrivals are a Poisson stream. */
  gapMs(ratePerSecond: number): number {
    return (-Math.log(1 - this.rng.next()) / ratePerSecond) * 1000;
  }

  /** Whole seconds; the run time gets a sub-second part as well (subSecond). */
  private runForSeconds(): number {
    const r = this.rng;
    if (this.o.short) return 3 + r.below(10);
    return r.next() < 0.85 ? 3 + r.below(13) : 20 + r.below(26);
  }

  /**
   * A burst: `size` GPU submissions of tenant research created in the same second across both its namespaces, bare
   * pods by its user and Jobs (whose pods the Job controller creates), through whichever webhook replica each reaches.
   * Bursts are what overran the quota before admission reserved it (issue 20).
   */
  burst(size: number): Submission[] {
    const r = this.rng;
    const out: Submission[] = [];
    for (let i = 0; i < size; i++) {
      const seq = ++this.seq;
      const namespace = i % 2 === 0 ? 'vision' : 'nlp';
      const runFor = this.runForSeconds();
      const fraction = pick(r, ['0.5', '0.75', '1']);
      const name = `burst-${String(seq).padStart(5, '0')}`;
      const life = lifecycleAnnotations(`${runFor}.${subSecond(name)}s`, 'succeeded');
      if (i % 3 === 2) {
        const template = soakPod({
          name,
          namespace,
          shape: 'job',
          role: 'load',
          annotations: { 'tessera.io/gpu-fraction': fraction, ...life },
        });
        const job: V1Job = {
          metadata: { name, namespace, labels: template.metadata!.labels! },
          spec: {
            completions: 2,
            parallelism: 2,
            backoffLimit: 1,
            ttlSecondsAfterFinished: 5,
            template: {
              metadata: { labels: template.metadata!.labels!, annotations: template.metadata!.annotations! },
              spec: template.spec!,
            },
          },
        };
        out.push({ namespace, name, shape: 'job', kind: 'job', body: job, deleteAfterMs: null, bad: false });
      } else {
        const annotations = { 'tessera.io/gpu-fraction': fraction, ...life };
        const body = soakPod({ name, namespace, shape: 'fraction', role: 'load', annotations });
        out.push({ namespace, name, shape: 'fraction', kind: 'pod', body, deleteAfterMs: null, bad: false });
      }
    }
    return out;
  }

  next(): Submission {
    const r = this.rng;
    const seq = ++this.seq;
    const [tenant, shape] = weighted(r, MIX);
    const namespace =
      tenant === 'research' ? pick(r, ['vision', 'nlp']) : tenant === 'payments-ml' ? 'risk' : 'genomics';
    const name = `${shape}-${String(seq).padStart(5, '0')}`;
    const runFor = this.runForSeconds();
    const fails = r.next() < 0.08;
    const life = lifecycleAnnotations(
      `${runFor}.${subSecond(name)}s`,
      fails ? 'failed' : 'succeeded',
      fails ? 1 + r.below(3) : undefined,
    );
    const priority =
      tenant === 'research'
        ? weighted<string | null>(r, [
            [null, 55],
            ['research-batch', 30],
            ['research-interactive', 15],
          ])
        : tenant === 'payments-ml' && r.next() < 0.3
          ? 'payments-serving'
          : null;
    const early = r.next() < 0.07 ? Math.round((0.5 + r.next() * runFor) * 1000) : null;
    let annotations: Record<string, string>;
    let image = tenant === 'payments-ml' ? EU_IMAGE : IMAGE;
    let pc = priority;
    let deleteAfterMs = early;
    let bad = false;
    switch (shape) {
      case 'fraction':
        annotations = {
          'tessera.io/gpu-fraction': pick(r, ['0.1', '0.2', '0.25', '0.3', '0.5']),
          ...(tenant === 'genomics' ? { 'tessera.io/pool': 'shared-h100' } : {}),
        };
        break;
      case 'whole':
        annotations = { 'tessera.io/gpu-count': r.next() < 0.75 ? '1' : '2' };
        break;
      case 'mig':
        annotations = {
          'tessera.io/pool': 'a100-mig',
          ...(r.next() < 0.5
            ? { 'tessera.io/gpu-fraction': pick(r, ['0.1', '0.25', '0.4']) }
            : { 'tessera.io/mig-profile': pick(r, ['1g.10gb', '2g.20gb', '3g.40gb']) }),
        };
        break;
      case 'time-sliced':
        annotations = { 'tessera.io/pool': 'l4-timesliced', 'tessera.io/gpu-fraction': pick(r, ['0.1', '0.25']) };
        break;
      case 'whole-eu':
        annotations = { 'tessera.io/gpu-count': '1' };
        break;
      case 'never-fits':
        // The user notices it cannot be placed and deletes it.
        annotations = { 'tessera.io/gpu-count': '3' };
        pc = null;
        deleteAfterMs = (this.o.short ? 5 + r.below(5) : 20 + r.below(20)) * 1000;
        break;
      case 'bad-fraction':
        annotations = { 'tessera.io/gpu-fraction': '0.02' };
        bad = true;
        break;
      case 'bad-priority':
        annotations = { 'tessera.io/gpu-fraction': '0.25' };
        pc = 'payments-serving';
        bad = true;
        break;
      case 'bad-registry':
        annotations = { 'tessera.io/gpu-fraction': '0.25' };
        image = 'docker.io/library/python:3.13';
        bad = true;
        break;
      case 'job': {
        const fraction = pick(r, ['0.1', '0.2', '0.25']);
        const completions = 1 + r.below(3);
        const template = soakPod({
          name,
          namespace,
          shape,
          role: 'load',
          annotations: { 'tessera.io/gpu-fraction': fraction, ...life },
          priorityClassName: pc,
        });
        const job: V1Job = {
          metadata: { name, namespace, labels: template.metadata!.labels! },
          spec: {
            completions,
            parallelism: Math.min(completions, 1 + r.below(2)),
            backoffLimit: 1,
            ttlSecondsAfterFinished: 5,
            template: {
              metadata: { labels: template.metadata!.labels!, annotations: template.metadata!.annotations! },
              spec: template.spec!,
            },
          },
        };
        return { namespace, name, shape, kind: 'job', body: job, deleteAfterMs: null, bad: false };
      }
    }
    const body = soakPod({
      name,
      namespace,
      shape,
      role: 'load',
      annotations: { ...annotations, ...(shape === 'never-fits' ? {} : life) },
      image,
      priorityClassName: pc,
    });
    return { namespace, name, shape, kind: 'pod', body, deleteAfterMs, bad };
  }
}
