// The fleet dispatcher's choice: which worker clusters MultiKueue copies a job to (Workload
// status.nominatedClusterNames). A worker is eligible when, for every GPU pod set of the job, one of the tenant's
// pools that can meet it has GPUs in that cluster and may be used in the cluster's region (region.ts): a tenant whose
// pools are all EU-pinned is never eligible on a US cluster, however empty. The job goes to the eligible workers whose
// free GPU-equivalents in those pools can hold it (most free first); when none can hold it now, to every eligible
// worker. Either way the first worker whose Tessera can place it wins (its tessera.io/gpu-fit check turns Ready): the
// published figures are a few seconds old and blind to tenant quota, gpu-fit is not.

import { formatEquivalents } from '../pools/equivalents.ts';
import type { ClusterCapacity } from './capacity.ts';
import type { PodSetAsk } from './job-ask.ts';
import { poolAllowedIn } from './region.ts';

export interface WorkerView {
  readonly name: string;
  /** The capacity the worker published, or null when it could not be read (then `problem` says why). */
  readonly capacity: ClusterCapacity | null;
  readonly problem?: string;
}

export interface WorkerFigure {
  readonly worker: string;
  /** Free GPU-equivalents in the pools the job may use there, less what this pass already sent there. */
  readonly free: number;
  /** What the job weighs there. */
  readonly need: number;
}

export interface Nomination {
  readonly nominated: readonly string[];
  readonly eligible: readonly WorkerFigure[];
  /** Why the workers were (or no worker was) chosen: for logs, events and the demo. */
  readonly message: string;
}

/** GPU-equivalents a pass has sent to a worker's pools and that its published capacity does not show yet. */
export type Pledged = Map<string, Map<string, number>>;

function figureOn(worker: WorkerView, asks: readonly PodSetAsk[], pledged: Pledged): WorkerFigure | string {
  const capacity = worker.capacity;
  if (capacity === null) return `${worker.name}: ${worker.problem ?? 'no capacity published'}`;
  const pools = new Set<string>();
  let need = 0;
  for (const ask of asks) {
    if (!ask.gpu) continue;
    const usable = ask.options.filter(
      (o) =>
        poolAllowedIn(o.pool, capacity.region) && capacity.pools.some((p) => p.pool === o.pool.name && p.total > 0),
    );
    if (usable.length === 0)
      return `${worker.name}: none of the pools ${ask.options.map((o) => o.pool.name).join(', ') || '(none)'} that can take pod set ${ask.name} has GPUs in region ${capacity.region ?? '(unset)'}`;
    for (const o of usable) pools.add(o.pool.name);
    need += ask.count * usable[0]!.equivalents;
  }
  const mine = pledged.get(worker.name);
  let free = 0;
  for (const p of capacity.pools) if (pools.has(p.pool)) free += p.free;
  for (const pool of pools) free -= mine?.get(pool) ?? 0;
  return { worker: worker.name, free: Math.round(free * 1000) / 1000, need: Math.round(need * 1000) / 1000 };
}

/**
 * Nominates workers for a job. `current` is what the job is nominated to now: kept while it is still eligible and
 * still holds the job, so that a job does not hop between workers as their figures move.
 */
export function nominateWorkers(
  asks: readonly PodSetAsk[],
  workers: readonly WorkerView[],
  current: readonly string[] = [],
  pledged: Pledged = new Map(),
): Nomination {
  const figures: WorkerFigure[] = [];
  const refusals: string[] = [];
  for (const w of workers) {
    const f = figureOn(w, asks, pledged);
    if (typeof f === 'string') refusals.push(f);
    else figures.push(f);
  }
  if (figures.length === 0)
    return { nominated: [], eligible: [], message: `no worker may take the job: ${refusals.join('; ')}` };
  figures.sort((a, b) => b.free - a.free || a.worker.localeCompare(b.worker));
  const holding = figures.filter((f) => f.free >= f.need);
  const eligible = new Set(figures.map((f) => f.worker));
  const holds = new Set(holding.map((f) => f.worker));
  if (
    current.length > 0 &&
    current.every((w) => eligible.has(w)) &&
    (current.some((w) => holds.has(w)) || holding.length === 0) &&
    (holding.length > 0 || current.length === figures.length)
  )
    return { nominated: [...current], eligible: figures, message: `kept on ${current.join(', ')}` };
  if (holding.length > 0)
    return {
      nominated: holding.map((f) => f.worker),
      eligible: figures,
      message: `${holding.map((f) => `${f.worker} has ${formatEquivalents(f.free)}`).join(', ')} free GPU-equivalents in the tenant's pools; the job needs ${formatEquivalents(holding[0]!.need)}`,
    };
  return {
    nominated: figures.map((f) => f.worker),
    eligible: figures,
    message: `no eligible worker has room now (${figures.map((f) => `${f.worker} ${formatEquivalents(Math.max(0, f.free))} free`).join(', ')}); every eligible worker gets a copy and the first whose Tessera can place it runs it${refusals.length > 0 ? `; not eligible: ${refusals.join('; ')}` : ''}`,
  };
}

/** Records what a nomination to one worker takes from its pools' published free capacity, for the rest of a pass. */
export function pledge(pledged: Pledged, worker: string, asks: readonly PodSetAsk[], capacity: ClusterCapacity): void {
  const mine = pledged.get(worker) ?? new Map<string, number>();
  for (const ask of asks) {
    if (!ask.gpu) continue;
    const o = ask.options.find(
      (x) =>
        poolAllowedIn(x.pool, capacity.region) && capacity.pools.some((p) => p.pool === x.pool.name && p.total > 0),
    );
    if (o) mine.set(o.pool.name, (mine.get(o.pool.name) ?? 0) + ask.count * o.equivalents);
  }
  pledged.set(worker, mine);
}
