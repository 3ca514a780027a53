// A claim's device requests as Tessera reads them: each `exactly` request, or each `firstAvailable` alternative, with
// its class, whether it can reach GPUs, how many devices it takes, and what kind of device (a whole GPU, a MIG device
// of a profile, or a share of a device that several claims may hold, by memory).

import { memoryMiB } from '../quantity.ts';
import type { Policy } from '../policy/model.ts';
import { classReach, selectorFacts, type ClassReach } from './gpu-classes.ts';
import type { DraLookup } from './lookup.ts';
import type { ExactDeviceRequest, ResourceClaimSpec } from './objects.ts';

export type DeviceKind = 'gpu' | 'mig' | 'share';

export interface Alternative {
  /** For messages: `request gpu`, or `request gpu, alternative small`. */
  readonly label: string;
  readonly className: string;
  readonly reach: ClassReach;
  /** Whether the alternative can be met with GPU devices. */
  readonly gpu: boolean;
  /** Devices it takes (allocationMode ExactCount). */
  readonly count: number;
  /** allocationMode All: every matching device of a node. */
  readonly all: boolean;
  readonly adminAccess: boolean;
  readonly kind: DeviceKind;
  /** The MIG profile the class or the request pins (mig), if any. */
  readonly profile: string | null;
  /** capacity.requests.memory on a shareable class (share). */
  readonly memoryMiB: number | null;
}

export interface RequestReading {
  readonly name: string;
  readonly alternatives: readonly Alternative[];
}

function alternative(
  label: string,
  r: ExactDeviceRequest,
  policy: Policy,
  lookup: DraLookup,
  malformed: string[],
): Alternative {
  const className = r.deviceClassName ?? '';
  const reach = classReach(className, policy, lookup);
  const classFacts = selectorFacts(lookup.deviceClass(className)?.spec?.selectors);
  const own = selectorFacts(r.selectors);
  const gpu =
    reach === 'gpu' ||
    (reach === 'all-devices' && (own.gpuDrivers.length > 0 || !own.namesDomain)) ||
    (reach === 'unknown' && own.gpuDrivers.length > 0);
  const profile = own.profile ?? classFacts.profile;
  const shareable = classFacts.shareable || own.shareable;
  let memory: number | null = null;
  const requested = r.capacity?.requests?.memory;
  if (requested !== undefined) {
    try {
      memory = memoryMiB(requested);
    } catch {
      malformed.push(`${label}: capacity.requests.memory "${String(requested)}" is not a Kubernetes quantity`);
    }
  }
  const kind: DeviceKind =
    shareable && memory !== null
      ? 'share'
      : profile !== null || className === 'mig.nvidia.com' || classFacts.mig || own.mig
        ? 'mig'
        : 'gpu';
  const count = Number.isInteger(r.count) && (r.count ?? 0) > 0 ? r.count! : 1;
  return {
    label,
    className,
    reach,
    gpu,
    count,
    all: r.allocationMode === 'All',
    adminAccess: r.adminAccess === true,
    kind,
    profile: kind === 'mig' ? profile : null,
    memoryMiB: kind === 'share' ? memory : null,
  };
}

/** Every request of a claim spec; `malformed` collects what cannot be read (the API server rejects most of it). */
export function readClaimSpec(
  spec: ResourceClaimSpec | null | undefined,
  policy: Policy,
  lookup: DraLookup,
  malformed: string[] = [],
): RequestReading[] {
  const out: RequestReading[] = [];
  for (const req of spec?.devices?.requests ?? []) {
    const name = req?.name ?? '';
    const alternatives: Alternative[] = [];
    if (req?.exactly) alternatives.push(alternative(`request ${name}`, req.exactly, policy, lookup, malformed));
    for (const sub of req?.firstAvailable ?? [])
      alternatives.push(
        alternative(`request ${name}, alternative ${sub?.name ?? ''}`, sub ?? {}, policy, lookup, malformed),
      );
    out.push({ name, alternatives });
  }
  return out;
}

/** Whether any alternative of any request can reach GPUs. */
export function asksForGpus(requests: readonly RequestReading[]): boolean {
  return requests.some((r) => r.alternatives.some((a) => a.gpu));
}
