// Whether a pod's DRA GPU demand fits a node's DRA devices, and how well: the scheduler-side mirror of what
// kube-scheduler's DRA plugin will allocate (the plugin still picks the devices). Requests are met in order, each by
// its first alternative that fits; MIG devices go to GPUs that already hold MIG work before pristine ones, shares to
// the device they fill best. The score is the node's GPU use after the placement (binpack, in GPU-equivalents), less
// a fragmentation term for every pristine GPU a MIG device would break into.

import { isolationAllows, type FitContext } from '../fit.ts';
import { reason, type Reason } from '../reasons.ts';
import type { DeviceKind } from './claim-requests.ts';
import type { DraCluster } from './cluster.ts';
import type { DraDevice, DraNode } from './inventory.ts';

export interface DeviceNeed {
  readonly kind: DeviceKind;
  readonly count: number;
  readonly profile: string | null;
  readonly memoryMiB: number | null;
}

export interface DraRequestNeed {
  readonly label: string;
  /** In the claim's order of preference (firstAvailable); one alternative for `exactly`. */
  readonly alternatives: readonly DeviceNeed[];
}

export type DraFit =
  | { readonly ok: true; readonly score: number; readonly devices: readonly string[] }
  | { readonly ok: false; readonly reason: Reason };

const FRAGMENTATION_PENALTY = 100;

function migWeight(profile: string | null): number {
  const g = profile === null ? null : /^(\d+)g/.exec(profile);
  return g ? Math.min(1, Number(g[1]) / 7) : 1;
}

interface DeviceState {
  readonly device: DraDevice;
  /** Held whole by a claim (or picked whole by this pod). */
  exclusive: boolean;
  /** Memory held by shares. */
  sharedMiB: number;
  readonly tenants: Map<string, number>;
}

/** The node's devices with what the cluster's claims hold of them. */
function deviceStates(
  node: DraNode,
  cluster: DraCluster,
  tenantOf: (namespace: string) => string | null,
  released: ReadonlySet<string>,
): Map<string, DeviceState> {
  const states = new Map<string, DeviceState>();
  for (const device of node.devices) {
    const state: DeviceState = { device, exclusive: false, sharedMiB: 0, tenants: new Map() };
    for (const h of cluster.holders(device.key)) {
      if (released.has(h.claim)) continue;
      if (!device.shareable || h.memoryMiB === null) state.exclusive = true;
      else {
        state.sharedMiB += h.memoryMiB;
        const tenant = tenantOf(h.namespace);
        if (tenant !== null) state.tenants.set(tenant, (state.tenants.get(tenant) ?? 0) + 1);
      }
    }
    states.set(device.key, state);
  }
  return states;
}

function busy(s: DeviceState): boolean {
  return s.exclusive || s.sharedMiB > 0;
}

class Picker {
  private readonly byUuid = new Map<string, DeviceState>();
  private readonly migChildren = new Map<string, DeviceState[]>();
  readonly picked: string[] = [];
  pristineBroken = 0;
  pickedEquivalents = 0;

  private readonly node: DraNode;
  private readonly states: Map<string, DeviceState>;
  private readonly ctx: FitContext;

  constructor(node: DraNode, states: Map<string, DeviceState>, ctx: FitContext) {
    this.node = node;
    this.states = states;
    this.ctx = ctx;
    for (const s of states.values()) {
      if (s.device.kind === 'gpu' && s.device.uuid) this.byUuid.set(s.device.uuid, s);
      if (s.device.kind === 'mig' && s.device.parentUuid) {
        const list = this.migChildren.get(s.device.parentUuid) ?? [];
        list.push(s);
        this.migChildren.set(s.device.parentUuid, list);
      }
    }
  }

  private parentBusy(s: DeviceState): boolean {
    const parent = s.device.parentUuid ? this.byUuid.get(s.device.parentUuid) : undefined;
    return parent !== undefined && busy(parent);
  }

  private childrenBusy(s: DeviceState): boolean {
    return (this.migChildren.get(s.device.uuid ?? '') ?? []).some(busy);
  }

  private siblingsBusy(s: DeviceState): boolean {
    return (this.migChildren.get(s.device.parentUuid ?? '') ?? []).some((x) => x !== s && busy(x));
  }

  candidates(need: DeviceNeed): DeviceState[] {
    const all = [...this.states.values()];
    switch (need.kind) {
      case 'gpu':
        return all.filter((s) => s.device.kind === 'gpu' && !busy(s) && !this.childrenBusy(s));
      case 'mig':
        return all
          .filter(
            (s) =>
              s.device.kind === 'mig' &&
              (need.profile === null || s.device.profile === need.profile) &&
              !busy(s) &&
              !this.parentBusy(s),
          )
          .sort((a, b) => Number(this.siblingsBusy(b)) - Number(this.siblingsBusy(a)));
      case 'share': {
        const room = (s: DeviceState) => (s.device.memoryMiB ?? this.node.gpuMemoryMiB ?? 0) - s.sharedMiB;
        return all
          .filter(
            (s) =>
              s.device.shareable &&
              !s.exclusive &&
              room(s) >= (need.memoryMiB ?? 0) &&
              isolationAllows(this.ctx, s.tenants),
          )
          .sort((a, b) => room(a) - room(b));
      }
    }
  }

  /** Takes the devices for one alternative, or returns false (and takes nothing). */
  take(need: DeviceNeed): boolean {
    const chosen: DeviceState[] = [];
    const mark = (s: DeviceState, sign: 1 | -1) => {
      if (need.kind === 'share') s.sharedMiB += sign * (need.memoryMiB ?? 0);
      else s.exclusive = sign === 1;
    };
    for (let i = 0; i < need.count; i++) {
      const next = this.candidates(need).find((s) => !chosen.includes(s));
      if (!next) {
        for (const s of chosen) mark(s, -1);
        return false;
      }
      chosen.push(next);
      // Mark now so that the next pick of this alternative sees it taken.
      mark(next, 1);
    }
    for (const s of chosen) {
      this.picked.push(s.device.key);
      if (need.kind === 'mig') {
        if (!this.siblingsBusy(s)) this.pristineBroken++;
        this.pickedEquivalents += migWeight(s.device.profile);
      } else if (need.kind === 'share') {
        const memory = s.device.memoryMiB ?? this.node.gpuMemoryMiB ?? 0;
        this.pickedEquivalents += memory > 0 ? (need.memoryMiB ?? 0) / memory : 1;
      } else this.pickedEquivalents += 1;
    }
    return true;
  }
}

function shortage(node: DraNode, need: DeviceNeed, states: Map<string, DeviceState>, label: string): Reason {
  const devices = [...states.values()].map((s) => s.device);
  switch (need.kind) {
    case 'gpu': {
      const gpus = devices.filter((d) => d.kind === 'gpu').length;
      if (gpus === 0)
        return reason(
          'MigProfileAbsent',
          `node ${node.node} publishes no whole-GPU DRA devices (${label} needs ${need.count})`,
        );
      if (need.count > gpus)
        return reason('TooManyGpus', `${label} needs ${need.count} GPUs, node ${node.node} has ${gpus}`);
      return reason('GpusExhausted', `${label} needs ${need.count} whole GPU(s); node ${node.node} has fewer free`);
    }
    case 'mig': {
      const of = devices.filter((d) => d.kind === 'mig' && (need.profile === null || d.profile === need.profile));
      if (of.length === 0)
        return reason(
          'MigProfileAbsent',
          `node ${node.node} publishes no ${need.profile ?? ''} MIG devices; it has ${[...new Set(devices.filter((d) => d.kind === 'mig').map((d) => d.profile))].join(', ') || 'none'}`,
        );
      return reason(
        'MigProfileExhausted',
        `${label} needs ${need.count} x MIG ${need.profile ?? '(any profile)'}; node ${node.node} has fewer free of ${of.length}`,
      );
    }
    case 'share':
      return reason(
        'GpuMemory',
        `${label} needs ${need.memoryMiB} MiB on a shared GPU; no shareable device of node ${node.node} has that much free for tenant sharing`,
      );
  }
}

/** The node's GPU use in GPU-equivalents from what the cluster's claims hold. */
function usedEquivalents(node: DraNode, states: Map<string, DeviceState>): number {
  let used = 0;
  for (const s of states.values()) {
    if (s.device.kind === 'mig' && s.exclusive) used += migWeight(s.device.profile);
    else if (s.device.kind === 'gpu' && s.exclusive) used += 1;
    else if (s.sharedMiB > 0) {
      const memory = s.device.memoryMiB ?? node.gpuMemoryMiB ?? 0;
      used += memory > 0 ? Math.min(1, s.sharedMiB / memory) : 1;
    }
  }
  return used;
}

/** Fits the requests on the node's DRA devices. */
export function fitDra(
  node: DraNode,
  cluster: DraCluster,
  requests: readonly DraRequestNeed[],
  ctx: FitContext,
  tenantOf: (namespace: string) => string | null,
  /** Claims (`namespace/name`) whose devices count as free: those preemption would release. */
  released: ReadonlySet<string> = new Set(),
): DraFit {
  const states = deviceStates(node, cluster, tenantOf, released);
  const before = usedEquivalents(node, states);
  const picker = new Picker(node, states, ctx);
  for (const r of requests) {
    let met = false;
    for (const alt of r.alternatives) {
      if (picker.take(alt)) {
        met = true;
        break;
      }
    }
    if (!met) {
      const first = r.alternatives[0];
      if (!first) continue;
      return { ok: false, reason: shortage(node, first, deviceStates(node, cluster, tenantOf, released), r.label) };
    }
  }
  const total = Math.max(1, node.physicalGpus);
  const score = (1000 * (before + picker.pickedEquivalents)) / total - FRAGMENTATION_PENALTY * picker.pristineBroken;
  return { ok: true, score, devices: picker.picked };
}
