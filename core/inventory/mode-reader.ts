// How a node's GPU mode is read: one reader per mode, tried in precedence order; the first that recognises the node
// says how many physical GPUs it has and what pods ask for there.

import type { MigGeometry } from '../catalog/mig-geometry.ts';
import type { MigInstance } from '../catalog/mig-layout.ts';
import type { NodeFacts } from './node-facts.ts';
import type { Findings } from './findings.ts';

export type NodeMode = 'none' | 'exclusive' | 'time-slicing' | 'mps' | 'mig' | 'fraction' | 'vm-devices';

export interface ModeReading {
  readonly mode: NodeMode;
  readonly physical: number;
  readonly replicas: number;
  readonly gpuResource: string | null;
  readonly migGeometry: MigGeometry | null;
  /** MIG instances per physical GPU (mig mode only). */
  readonly layout: readonly (readonly MigInstance[])[];
}

/** Returns null when the node is not in this reader's mode. */
export type ModeReader = (facts: NodeFacts, found: Findings) => ModeReading | null;

export const NO_GPU_MODE: ModeReading = {
  mode: 'none',
  physical: 0,
  replicas: 1,
  gpuResource: null,
  migGeometry: null,
  layout: [],
};
