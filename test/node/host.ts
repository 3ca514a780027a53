// The host side of the real node: Debian packages installed when a command is missing, and every change made to the
// machine (sysctls, links, routes, mounts, cgroups, iptables) recorded with its undo, so that teardown puts the
// machine back as it was, also from a process 'exit' handler (every undo is synchronous).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs a command, returning its stdout; throws with its stderr on failure. */
export function sh(command: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

function onPath(command: string): boolean {
  if (command.startsWith('/')) return existsSync(command);
  return [
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
    ...(process.env.PATH ?? '').split(':'),
  ]
    .filter(Boolean)
    .some((d) => existsSync(join(d, command)));
}

/** What the node needs from Debian: a command (or file) and the package that brings it. containerd is not among them:
 * the node runs containerd 2, built (containerd.ts); Debian's is 1.6, with no CDI. */
export const NODE_PACKAGES: readonly (readonly [string, string])[] = [
  ['runc', 'runc'],
  ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
  ['/usr/lib/cni/host-local', 'containernetworking-plugins'],
  ['/usr/lib/cni/loopback', 'containernetworking-plugins'],
  ['iptables', 'iptables'],
  ['iptables-restore', 'iptables'],
  ['conntrack', 'conntrack'],
  ['ip', 'iproute2'],
  ['mount', 'mount'],
  ['buildah', 'buildah'],
  ['gcc', 'gcc'],
  ['/usr/lib/x86_64-linux-gnu/libc.a', 'libc6-dev'],
];

/** Installs (apt-get) the packages of the commands that are missing; returns the packages installed. */
export function ensurePackages(log: (line: string) => void = () => {}): string[] {
  const missing = [...new Set(NODE_PACKAGES.filter(([c]) => !onPath(c)).map(([, p]) => p))];
  if (missing.length === 0) return [];
  if (process.getuid?.() !== 0) throw new Error(`missing ${missing.join(', ')}: run as root, or apt-get install them`);
  log(`installing ${missing.join(', ')} from Debian's packages`);
  sh('apt-get', ['update']);
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return missing;
}

/** The cgroup hierarchies a pod's cgroups are made in: on cgroup v1 each subsystem's folder under /sys/fs/cgroup and,
 * in hybrid mode, the cgroup2 one beside them (/sys/fs/cgroup/unified, where runc makes them too); on cgroup v2 (not
 * tried here: this machine has v1) /sys/fs/cgroup itself. */
export function cgroupHierarchies(): string[] {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup'];
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => ['cgroup', 'cgroup2'].includes(f[f.indexOf('-') + 1] ?? ''))
    .map((f) => f[4]!);
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.replace(/\/$/, '');
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === prefix || m.startsWith(`${prefix}/`)))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Unmounts everything at or under `dir` (lazily, deepest first); returns how many. */
export function unmountUnder(dir: string): number {
  let count = 0;
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      try {
        sh('umount', ['-l', m]);
        count++;
      } catch {
        // already gone with its parent
      }
    }
  }
  return count;
}

/** Kills every process in a cgroup v1 subtree and removes its folders, deepest first. */
export function removeCgroupTree(path: string): void {
  if (!existsSync(path)) return;
  const dirs: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    dirs.push(d);
  };
  walk(path);
  for (let round = 0; round < 20; round++) {
    let left = 0;
    for (const d of dirs) {
      for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        left++;
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    if (left === 0) break;
    execFileSync('sleep', ['0.2']);
  }
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      // a process was still leaving; the next teardown gets it
    }
  }
}

/**
 * Removes every KUBE-* chain from iptables and ip6tables, and the rules of the built-in chains that jump to them: the
 * kubelet's own (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), which `kube-proxy --cleanup` leaves, and any
 * of kube-proxy's that it left.
 */
export function removeKubeChains(): string[] {
  const removed: string[] = [];
  for (const cmd of ['iptables', 'ip6tables'])
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      let rules: string[];
      try {
        rules = sh(cmd, ['-w', '5', '-t', table, '-S']).split('\n');
      } catch {
        continue;
      }
      const chains = rules.map((r) => /^-N (KUBE-\S+)$/.exec(r)?.[1]).filter((c): c is string => c !== undefined);
      if (chains.length === 0) continue;
      for (const r of rules) {
        const m = /^-A (\S+) (.*-j (KUBE-\S+).*)$/.exec(r);
        if (m && !m[1]!.startsWith('KUBE-'))
          try {
            sh('sh', ['-c', `${cmd} -w 5 -t ${table} -D ${m[1]} ${m[2]}`]);
          } catch {
            // gone already
          }
      }
      for (const c of chains)
        try {
          sh(cmd, ['-w', '5', '-t', table, '-F', c]);
        } catch {
          // gone already
        }
      for (const c of chains)
        try {
          sh(cmd, ['-w', '5', '-t', table, '-X', c]);
          removed.push(`${cmd} ${table} ${c}`);
        } catch {
          // gone already
        }
    }
  return removed;
}

/** A record of changes to the machine, undone in reverse order. */
export class HostChanges {
  private readonly undos: { what: string; undo: () => void }[] = [];
  readonly log: (line: string) => void;
  /** What a later run needs to undo this one's changes if this process dies without undoing them (SIGKILL). */
  private readonly journal: Journal = { pid: process.pid, sysctls: {} };
  private readonly journalFile: string;
  constructor(log: (line: string) => void = () => {}) {
    this.log = log;
    this.journalFile = join(JOURNALS, `${process.pid}.json`);
  }
  /** Records facts for the journal (the folder, the bridge, the cgroup root, ...). */
  note(facts: Partial<Omit<Journal, 'pid' | 'sysctls'>>): void {
    Object.assign(this.journal, facts);
    mkdirSync(JOURNALS, { recursive: true });
    writeFileSync(this.journalFile, JSON.stringify(this.journal));
  }
  /** Records an undo for a change already made. */
  add(what: string, undo: () => void): void {
    this.undos.push({ what, undo });
  }
  private keepSysctl(key: string, old: string): void {
    if (!(key in this.journal.sysctls)) {
      this.journal.sysctls[key] = old;
      this.note({});
    }
  }
  /** Sets a sysctl (under /proc/sys), recording its old value, unless it already has this value. */
  sysctl(key: string, value: string): void {
    const file = join('/proc/sys', ...key.split('.'));
    const old = readFileSync(file, 'utf8').trim();
    if (old === value) return;
    this.keepSysctl(key, old);
    writeFileSync(file, value);
    this.add(`sysctl ${key}=${old}`, () => writeFileSync(file, old));
  }
  /** Records the current values of sysctls that something else (the kubelet) may change, to put them back. */
  keepSysctls(keys: readonly string[]): void {
    for (const key of keys) {
      const file = join('/proc/sys', ...key.split('.'));
      if (!existsSync(file)) continue;
      const old = readFileSync(file, 'utf8').trim();
      this.keepSysctl(key, old);
      this.add(`sysctl ${key}=${old}`, () => {
        if (readFileSync(file, 'utf8').trim() !== old) writeFileSync(file, old);
      });
    }
  }
  /** Undoes everything, most recent first; errors are collected, not thrown, so that every undo runs. */
  undoAll(): string[] {
    const errors: string[] = [];
    while (this.undos.length > 0) {
      const { what, undo } = this.undos.pop()!;
      try {
        undo();
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`);
      }
    }
    for (const e of errors) this.log(`teardown: ${e}`);
    if (errors.length === 0) rmSync(this.journalFile, { force: true });
    return errors;
  }
}

const JOURNALS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'node', 'running');

interface Journal {
  pid: number;
  sysctls: Record<string, string>;
  dir?: string;
  bridge?: string;
  route?: string;
  cgroupRoot?: string;
  containerdSocket?: string;
  /** /run/containerd was made by this run (containerd keeps shim sockets and FIFOs there). */
  runContainerd?: boolean;
  /** The fake GPUs' CDI spec (fake-gpus.ts), in a directory containerd reads. */
  cdiSpecFile?: string;
}

/**
 * Undoes what a real-node run whose process died without tearing down (SIGKILL, a machine stop) left: it's shims and
 * containers, cgroups, mounts, iptables chains, bridge and route, sysctls and folder, from its journal. Returns the
 * pids of the runs reaped.
 */
export function reapStaleNodes(log: (line: string) => void = () => {}): number[] {
  if (!existsSync(JOURNALS)) return [];
  const reaped: number[] = [];
  for (const file of readdirSync(JOURNALS)) {
    let j: Journal;
    try {
      j = JSON.parse(readFileSync(join(JOURNALS, file), 'utf8')) as Journal;
    } catch {
      rmSync(join(JOURNALS, file), { force: true });
      continue;
    }
    try {
      process.kill(j.pid, 0);
      continue; // still running
    } catch {
      // dead: undo its changes
    }
    log(`undoing what real-node run ${j.pid} left (it died without tearing down)`);
    const step = (what: string, f: () => void): void => {
      try {
        f();
      } catch (e) {
        // A process that ended while /proc was read is not worth a line.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log(`reap ${j.pid}: ${what}: ${(e as Error).message}`);
      }
    };
    if (j.containerdSocket)
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p)))
        step('shim', () => {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          if (cmdline.includes(j.containerdSocket!)) process.kill(Number(pid), 'SIGKILL');
        });
    if (j.cgroupRoot)
      for (const h of cgroupHierarchies()) step('cgroups', () => removeCgroupTree(join(h, j.cgroupRoot!)));
    if (j.dir) step('mounts', () => unmountUnder(j.dir!));
    step('iptables', () => removeKubeChains());
    if (j.route) step('route', () => sh('ip', ['route', 'del', j.route!]));
    if (j.bridge) step('bridge', () => sh('ip', ['link', 'del', j.bridge!]));
    for (const [key, old] of Object.entries(j.sysctls))
      step(`sysctl ${key}`, () => writeFileSync(join('/proc/sys', ...key.split('.')), old));
    if (j.cdiSpecFile) step('CDI spec', () => rmSync(j.cdiSpecFile!, { force: true }));
    if (j.dir && mountsUnder(j.dir).length === 0)
      step('folder', () => rmSync(j.dir!, { recursive: true, force: true }));
    // Made by that run: its killed shims left their sockets there.
    if (j.runContainerd) step('/run/containerd', () => rmSync('/run/containerd', { recursive: true, force: true }));
    rmSync(join(JOURNALS, file), { force: true });
    reaped.push(j.pid);
  }
  return reaped;
}
