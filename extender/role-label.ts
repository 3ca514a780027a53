// The leader's mark on its own pod: `tessera.io/extender-role: leader`, which the extender Service selects, so that
// kube-scheduler's calls reach the replica holding the Lease while every replica that could serve is Ready (and the
// Deployment is Available, its rollouts and PodDisruptionBudget work as for any other). The label follows the Lease:
// set on taking it, removed on losing it and on shutdown, and removed at start (a container restarted in a pod that
// led keeps the pod's labels). A patch that fails is tried again at the next elector round.

import type { Logger } from 'pino';

export const ROLE_LABEL = 'tessera.io/extender-role';
export const LEADER_ROLE = 'leader';

/** Sets (`leader`) or removes (null) the role label on this replica's pod: a JSON merge patch of metadata.labels. */
export type PodLabelPatch = (role: string | null) => Promise<void>;

export class RoleLabel {
  private readonly patch: PodLabelPatch;
  private readonly log: Logger;
  private wanted = false;
  /** What the pod carries as far as we know; null until the first patch succeeds. */
  private applied: boolean | null = null;
  private running: Promise<void> | null = null;
  private lastError: string | null = null;

  constructor(patch: PodLabelPatch, log: Logger) {
    this.patch = patch;
    this.log = log;
  }

  /** Whether the pod is known to carry the leader label. */
  get labelled(): boolean {
    return this.applied === true;
  }

  /** Wants the label on (leader) or off, and patches the pod if it differs; resolves when the pod carries it. */
  want(leader: boolean): Promise<void> {
    this.wanted = leader;
    return this.sync();
  }

  /** Patches until the pod carries what is wanted (one patch at a time; a failure is left for the next call). */
  sync(): Promise<void> {
    if (this.running !== null) return this.running;
    const run = async () => {
      try {
        while (this.applied !== this.wanted) {
          const leader = this.wanted;
          await this.patch(leader ? LEADER_ROLE : null);
          this.applied = leader;
          this.log.info(
            { label: ROLE_LABEL, leader },
            leader ? 'labelled this pod leader' : 'removed the leader label',
          );
        }
      } catch (e) {
        this.applied = null;
        const err = e instanceof Error ? e.message : String(e);
        // Once per distinct failure: it is tried again every second while the API server is away.
        this.log[err === this.lastError ? 'debug' : 'warn'](
          { label: ROLE_LABEL, err },
          'could not update the leader label on this pod; trying again',
        );
        this.lastError = err;
        return;
      }
      this.lastError = null;
    };
    // Cleared after it settles (never synchronously inside it, which would leave a settled promise behind).
    this.running = run().finally(() => {
      this.running = null;
    });
    return this.running;
  }
}
