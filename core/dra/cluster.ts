// The scheduler-side DRA model: DeviceClasses, ResourceClaims, ResourceClaimTemplates and ResourceSlices as the
// informers report them, the per-node GPU inventory read from the slices, and the devices the claims' allocations
// hold. Derived views are rebuilt lazily after a change; `onChange` lets the owner invalidate its verdict cache.

import type { DraLookup } from './lookup.ts';
import { heldDevices, readSlices, type DraNode, type HeldDevice } from './inventory.ts';
import type { KubeDeviceClass, KubeResourceClaim, KubeResourceClaimTemplate, KubeResourceSlice } from './objects.ts';

const nsKey = (o: { metadata?: { namespace?: string; name?: string } }) =>
  `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class DraCluster implements DraLookup {
  private readonly classes = new Map<string, KubeDeviceClass>();
  private readonly claims = new Map<string, KubeResourceClaim>();
  private readonly templates = new Map<string, KubeResourceClaimTemplate>();
  private readonly slices = new Map<string, KubeResourceSlice>();
  private nodesView: Map<string, DraNode> | null = null;
  private deviceNodes: Map<string, string> | null = null;
  private heldView: Map<string, HeldDevice[]> | null = null;
  private readonly onChange: () => void;

  constructor(onChange: () => void = () => {}) {
    this.onChange = onChange;
  }

  private changed(slices: boolean, claims: boolean): void {
    if (slices) {
      this.nodesView = null;
      this.deviceNodes = null;
    }
    if (claims) this.heldView = null;
    this.onChange();
  }

  upsertClass(c: KubeDeviceClass): void {
    this.classes.set(c.metadata?.name ?? '', c);
    this.changed(false, false);
  }

  removeClass(name: string): void {
    this.classes.delete(name);
    this.changed(false, false);
  }

  upsertClaim(c: KubeResourceClaim): void {
    this.claims.set(nsKey(c), c);
    this.changed(false, true);
  }

  removeClaim(namespace: string, name: string): void {
    this.claims.delete(`${namespace}/${name}`);
    this.changed(false, true);
  }

  upsertTemplate(t: KubeResourceClaimTemplate): void {
    this.templates.set(nsKey(t), t);
    this.changed(false, false);
  }

  removeTemplate(namespace: string, name: string): void {
    this.templates.delete(`${namespace}/${name}`);
    this.changed(false, false);
  }

  upsertSlice(s: KubeResourceSlice): void {
    this.slices.set(s.metadata?.name ?? '', s);
    this.changed(true, false);
  }

  removeSlice(name: string): void {
    this.slices.delete(name);
    this.changed(true, false);
  }

  deviceClass(name: string): KubeDeviceClass | undefined {
    return this.classes.get(name);
  }

  deviceClasses(): readonly KubeDeviceClass[] {
    return [...this.classes.values()];
  }

  resourceClaim(namespace: string, name: string): KubeResourceClaim | undefined {
    return this.claims.get(`${namespace}/${name}`);
  }

  resourceClaimTemplate(namespace: string, name: string): KubeResourceClaimTemplate | undefined {
    return this.templates.get(`${namespace}/${name}`);
  }

  private nodes(): Map<string, DraNode> {
    if (this.nodesView === null) this.nodesView = readSlices(this.slices.values());
    return this.nodesView;
  }

  /** The node's GPU devices from DRA, if a GPU driver publishes any for it. */
  node(name: string): DraNode | undefined {
    return this.nodes().get(name);
  }

  /** Nodes with DRA GPUs. */
  nodeNames(): string[] {
    return [...this.nodes().keys()];
  }

  /** The node a device (driver/pool/device) is on. */
  nodeOfDevice(key: string): string | undefined {
    if (this.deviceNodes === null) {
      this.deviceNodes = new Map();
      for (const n of this.nodes().values()) for (const d of n.devices) this.deviceNodes.set(d.key, n.node);
    }
    return this.deviceNodes.get(key);
  }

  /** Who holds a device (allocated claims). */
  holders(key: string): readonly HeldDevice[] {
    if (this.heldView === null) {
      this.heldView = new Map();
      for (const c of this.claims.values())
        for (const h of heldDevices(c)) {
          const list = this.heldView.get(h.key) ?? [];
          list.push(h);
          this.heldView.set(h.key, list);
        }
    }
    return this.heldView.get(key) ?? [];
  }

  /**
   * The claims (`namespace/name`) that evicting the pods `uids` would release: allocated claims reserved for them and
   * for no other pod (kube-scheduler deallocates a claim once no consumer in status.reservedFor is left).
   */
  releasedBy(uids: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    if (uids.size === 0) return out;
    for (const [key, c] of this.claims) {
      const consumers = (c.status?.reservedFor ?? []).map((r) => r.uid ?? '');
      if (consumers.length > 0 && consumers.every((u) => uids.has(u)) && heldDevices(c).length > 0) out.add(key);
    }
    return out;
  }

  /** Allocated claims and the devices they hold on `node`, for reports (`tessera explain`). */
  claimsOn(node: string): { claim: string; devices: string[]; consumers: string[] }[] {
    const out: { claim: string; devices: string[]; consumers: string[] }[] = [];
    for (const [key, c] of this.claims) {
      const devices = heldDevices(c)
        .filter((h) => this.nodeOfDevice(h.key) === node)
        .map((h) => h.key);
      if (devices.length > 0)
        out.push({ claim: key, devices, consumers: (c.status?.reservedFor ?? []).map((r) => r.name ?? r.uid ?? '') });
    }
    return out.sort((a, b) => a.claim.localeCompare(b.claim));
  }

  /** The node an allocated claim's devices are on, or null when it is not allocated (or not on a known node). */
  allocatedNode(claim: KubeResourceClaim): string | null {
    for (const h of heldDevices(claim)) {
      const node = this.nodeOfDevice(h.key);
      if (node) return node;
    }
    return null;
  }
}
