// MIG under the single strategy: every GPU is cut into one profile, named in the product label, and the device plugin
// advertises the instances as nvidia.com/gpu.

import { reconstructLayout } from '../../catalog/mig-layout.ts';
import { GFD, NVIDIA_GPU } from '../../well-known-names.ts';
import type { ModeReader } from '../mode-reader.ts';

export const readMigSingleMode: ModeReader = (f, found) => {
  if (f.migStrategy !== 'single') return null;
  const geometry = f.catalog?.mig ?? null;
  const product = f.product;
  const profile =
    product === undefined ? undefined : /-MIG-(\d+g\.\d+gb(?:\+me)?)$/i.exec(product.replace(/-SHARED$/i, ''))?.[1];
  if (product !== undefined && /-MIG-INVALID$/i.test(product))
    found.problems.push('GFD reports an invalid MIG configuration (gpu.product ends in -MIG-INVALID)');
  else if (profile === undefined) found.problems.push(`mig.strategy=single but ${GFD.product} names no MIG profile`);
  if (geometry === null)
    found.problems.push(`GPU model ${f.model ?? '(unknown)'} has no MIG geometry in Tessera's catalog`);
  const devices = f.resources[NVIDIA_GPU] ?? f.labelCount ?? 0;
  const perGpu =
    profile === undefined || geometry === null
      ? 0
      : (geometry.profiles.find((p) => p.name === profile)?.maxInstances ?? 0);
  if (profile !== undefined && geometry !== null && perGpu === 0)
    found.problems.push(`MIG profile ${profile} does not exist on ${f.model} GPUs`);
  const physical = perGpu > 0 ? Math.ceil(devices / perGpu) : 0;
  let layout: ReturnType<typeof reconstructLayout>['gpus'] = [];
  if (profile !== undefined && geometry !== null && perGpu > 0) {
    const rebuilt = reconstructLayout(geometry, physical, { [profile]: devices });
    if (rebuilt.problem !== null) found.problems.push(rebuilt.problem);
    layout = rebuilt.gpus;
  }
  return {
    mode: 'mig',
    physical,
    replicas: 1,
    gpuResource: NVIDIA_GPU,
    migGeometry: geometry,
    layout: layout.map((g) => [...g]),
  };
};
