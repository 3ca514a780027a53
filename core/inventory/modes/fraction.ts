// Fraction nodes (tessera.io/sharing=fraction): Tessera's own accounting over GFD's GPU count; the device plugin must
// neither partition nor share these GPUs.

import { GFD, GPU_MILLI, SHARING_LABEL } from '../../well-known-names.ts';
import { NO_GPU_MODE, type ModeReader } from '../mode-reader.ts';

export const readFractionMode: ModeReader = (f, found) => {
  if (!f.fractionLabel) return null;
  if (f.labelCount === null)
    found.problems.push(`fraction node has no valid ${GFD.count} label, so Tessera cannot tell how many GPUs to share`);
  if (f.migStrategy !== 'none' && (Object.keys(f.migCounts).length > 0 || f.hasMigResources)) {
    found.problems.push(
      `node is labelled ${SHARING_LABEL}=fraction but its GPUs are MIG-partitioned; remove one of the two`,
    );
  }
  if (f.sharing !== 'none') {
    found.problems.push(
      `node is labelled ${SHARING_LABEL}=fraction but the device plugin shares its GPUs (${GFD.sharingStrategy}=${f.sharing}); use one sharing mechanism`,
    );
  }
  const advertised = f.resources[GPU_MILLI];
  if (advertised !== undefined && f.labelCount !== null && advertised !== f.labelCount * 1000) {
    found.warnings.push(
      `allocatable ${GPU_MILLI}=${advertised} does not match ${f.labelCount} GPU(s) x 1000 yet (capacity controller pending); accounting uses the labels`,
    );
  }
  return { ...NO_GPU_MODE, mode: 'fraction', gpuResource: GPU_MILLI, physical: f.labelCount ?? 0 };
};
