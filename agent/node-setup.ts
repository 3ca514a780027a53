// What the node offers for delivery and enforcement, read from the files the NVIDIA stack leaves on it:
// - CDI specs (JSON or YAML) in the CDI directories (/etc/cdi, /var/run/cdi: the defaults of containerd 2 and CRI-O);
// - the NVIDIA container toolkit's config.toml, for accept-nvidia-visible-devices-as-volume-mounts;
// - HAMi-core's libvgpu.so and ld.so.preload in their host directory; an MPS control daemon's pipe directory.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { cdiDeviceNames, type EnforcementKind, type NodeDeliveryFacts } from '../core/node-agent/delivery.ts';

export function readCdiDevices(dirs: readonly string[]): { names: Set<string>; problems: string[] } {
  const names = new Set<string>();
  const problems: string[] = [];
  for (const dir of dirs) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      continue;
    }
    for (const f of files.sort()) {
      if (!/\.(json|ya?ml)$/.test(f)) continue;
      const path = join(dir, f);
      try {
        for (const n of cdiDeviceNames(parseYaml(readFileSync(path, 'utf8')))) names.add(n);
      } catch (e) {
        problems.push(`cannot read CDI spec ${path}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      }
    }
  }
  return { names, problems };
}

/** `accept-nvidia-visible-devices-as-volume-mounts = true` in the toolkit's config.toml (a top-level key). */
export function toolkitAcceptsVolumeMounts(configFile: string): boolean {
  try {
    return /^\s*accept-nvidia-visible-devices-as-volume-mounts\s*=\s*true\s*$/m.test(readFileSync(configFile, 'utf8'));
  } catch {
    return false;
  }
}

export function readDeliveryFacts(
  cdiDirs: readonly string[],
  toolkitConfig: string,
): NodeDeliveryFacts & { problems: string[] } {
  const cdi = readCdiDevices(cdiDirs);
  return {
    cdiDevices: cdi.names,
    toolkitAcceptsVolumeMounts: toolkitAcceptsVolumeMounts(toolkitConfig),
    problems: cdi.problems,
  };
}

/** Enforcement the node has: HAMi-core's files present, else an MPS control daemon's pipe directory with its control pipe. */
export function detectEnforcement(hamiCoreDir: string, mpsPipeDir: string): { kind: EnforcementKind; because: string } {
  if (existsSync(join(hamiCoreDir, 'libvgpu.so')) && existsSync(join(hamiCoreDir, 'ld.so.preload')))
    return { kind: 'hami-core', because: `${hamiCoreDir} holds libvgpu.so and ld.so.preload` };
  try {
    if (statSync(join(mpsPipeDir, 'control')).isFIFO() || existsSync(join(mpsPipeDir, 'control')))
      return { kind: 'mps', because: `an MPS control daemon listens in ${mpsPipeDir}` };
  } catch {
    // no MPS daemon
  }
  return { kind: 'none', because: `neither HAMi-core in ${hamiCoreDir} nor an MPS control daemon in ${mpsPipeDir}` };
}
