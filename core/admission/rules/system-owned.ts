// System-owned names (tessera.io/assignment, visible-devices, policy-revision) are written only by Tessera: forged
// values are denied on CREATE and UPDATE, whatever the pod's schedulerName (HAMi#3041).

import type { KubePod } from '../../kube-objects.ts';
import { ASSIGNMENT, POLICY_REVISION, VISIBLE_DEVICES } from '../../well-known-names.ts';
import { BUILTIN, type PodCheck, type Violation } from '../check.ts';

function annotation(pod: KubePod | null, key: string): string | undefined {
  return pod?.metadata?.annotations?.[key];
}

export const systemOwnedCheck: PodCheck = (s, ctx) => {
  if (ctx.system) return [];
  const out: Violation[] = [];
  const deny = (message: string) =>
    out.push({ rule: BUILTIN.systemOwned, action: 'enforce', message: `${s.where}${message}` });
  for (const key of [ASSIGNMENT, VISIBLE_DEVICES]) {
    const now = annotation(s.pod, key);
    if (s.template || ctx.operation === 'CREATE') {
      if (now !== undefined) deny(`annotation ${key} is written only by Tessera's extender at bind; remove it`);
    } else if (now !== annotation(s.old, key)) {
      deny(`annotation ${key} is written only by Tessera's extender; it may not be changed or removed`);
    }
  }
  const revision = annotation(s.pod, POLICY_REVISION);
  if (s.template) {
    if (revision !== undefined)
      deny(`annotation ${POLICY_REVISION} is stamped by Tessera at admission; remove it from the template`);
  } else if (ctx.operation === 'CREATE') {
    if (revision !== undefined && revision !== ctx.policy.revision && !ctx.recentRevisions.has(revision))
      deny(`annotation ${POLICY_REVISION}=${revision} is not the policy revision Tessera stamps; remove it`);
  } else if (revision !== annotation(s.old, POLICY_REVISION)) {
    deny(`annotation ${POLICY_REVISION} records the policy that admitted the pod; it may not be changed or removed`);
  }
  return out;
};
