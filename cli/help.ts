// How each command is called, and UsageError: a mistake in how a command was called (unknown option, missing or
// malformed argument), for which the CLI prints the message and the command's usage and exits 2 (a failure of the
// work itself exits 1). The usage texts live here, apart from the commands, so that `tessera --help` and
// `tessera version` load no command (the Kubernetes client alone takes a second or more to load).

import { REPORTED_LOADS } from '../core/simulation/replay.ts';
import { DEFAULT_STRATEGY, STRATEGIES } from '../core/scoring/strategy-registry.ts';

export class UsageError extends Error {
  override name = 'UsageError';
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.usage = usage;
  }
}

export const SERVE_USAGE = `tessera serve webhook --policy-dir DIR [--policy-cache-dir DIR] [--tls-cert FILE --tls-key FILE] [--host 0.0.0.0]
                     [--port 8443] [--system-user NAME]... [--kubevirt-user NAME]... [--kubeconfig FILE] [--context NAME]
                     [--audit-interval SECONDS] [--quota-namespace tessera-system] [--log-level info]
tessera serve extender [--policy-dir DIR [--policy-cache-dir DIR]] [--tls-cert FILE --tls-key FILE] [--host 0.0.0.0]
                     [--port 8888] [--prefix /scheduler] [--strategy tessera] [--lease-namespace NS] [--lease-name NAME]
                     [--lease-seconds 3] [--pod-name NAME [--pod-namespace NS]]
                     [--kubeconfig FILE] [--context NAME] [--log-level info]
                     [--fleet-cluster NAME [--fleet-region REGION] [--fleet-namespace tessera-system]
                      [--publish-capacity] [--gpu-fit-check]]
  Tessera's own service accounts (--system-user, e.g. system:serviceaccount:tessera-system:tessera-extender) may write
  system-owned annotations. --kubevirt-user names the identity KubeVirt's virt-controller creates virt-launcher pods as
  (default: system:serviceaccount:kubevirt:kubevirt-controller and the openshift-cnv one). Invalid policy files never
  replace the last good policy; --policy-cache-dir (an emptyDir) keeps it across a restart of the container. Without --kubeconfig: $KUBECONFIG, ~/.kube/config, or the pod's service account. With
  --lease-namespace the extender elects a leader through a Lease and only the leader serves. With --pod-name (its own
  pod, from the downward API) every replica that can serve is Ready and the leader labels its pod
  tessera.io/extender-role=leader for the Service to select; without it only the leader is Ready. The webhook reserves
  GPU pods' quota in ConfigMap tessera-quota-reservations of --quota-namespace (docs/quota.md). In a fleet of clusters
  (docs/fleet.md) the leading extender of a worker publishes its free GPU-equivalents per pool (--publish-capacity,
  ConfigMap tessera-fleet-capacity) and answers Kueue's tessera.io/gpu-fit admission check (--gpu-fit-check). Both run until SIGTERM
  or SIGINT (exit 0); a start that cannot serve (unreadable TLS files, port taken) exits 1.
tessera serve dispatcher --policy-dir DIR [--policy-cache-dir DIR] [--tls-cert FILE --tls-key FILE] [--host 0.0.0.0]
                     [--port 9443]
                     [--kueue-namespace kueue-system] [--interval 2] [--kubeconfig FILE] [--context NAME]
                     [--log-level info]
  On the manager cluster of a fleet (docs/fleet.md): nominates workers for Kueue's MultiKueue workloads
  (multiKueue.dispatcherName tessera.io/fleet-dispatcher) from each worker's published capacity and the tenant's pools
  and regions, and serves POST /mutate-job, the Job webhook that writes tessera.io/gpu-milli into the template of a job
  asking for GPUs with Tessera's annotations, so that Kueue counts it. Runs one instance (no leader election yet).
tessera serve node-agent --node-name NAME [--driver-root /] [--device-plugin-dir /var/lib/kubelet/device-plugins]
                     [--pod-resources-socket /var/lib/kubelet/pod-resources/kubelet.sock]
                     [--delivery auto|cdi-cri|envvar|volume-mounts] [--cdi-kind nvidia.com/gpu] [--cdi-dir DIR]...
                     [--write-cdi-spec FILE] [--dev-root /] [--toolkit-config FILE]
                     [--enforcement auto|hami-core|mps|none] [--hami-core-dir /usr/local/vgpu]
                     [--mps-pipe-dir /tmp/nvidia-mps] [--scheduler-name tessera-scheduler]...
                     [--host 0.0.0.0] [--port 9400] [--health-interval 5] [--kubelet-check-interval 1]
                     [--kubeconfig FILE] [--context NAME] [--log-level info]
  The kubelet device plugin for tessera.io/gpu-milli on one fraction node (docs/node-agent.md). --node-name defaults
  to $NODE_NAME. Intervals are in seconds.`;

export const POLICY_USAGE = `tessera policy lint FILE|DIR...
tessera policy test DIR|FILE...
tessera policy apply --policy FILE|DIR [--context FILE] [--system-user NAME]... [-o json|yaml] REVIEW.json
  lint exits 1 on any problem; test exits 1 when a case fails or is invalid; apply prints the AdmissionReview the
  webhook would answer (or with -o the object after mutation) and exits 1 when the request is denied.`;

export const AUDIT_USAGE = `tessera audit --policy FILE|DIR [--snapshot FILE] [--kubeconfig FILE] [--context NAME] [--json]
  Without --snapshot it reads the live cluster: --kubeconfig, else $KUBECONFIG, ~/.kube/config or the pod's service
  account. It exits 0 whether or not pods drifted (the report says); 1 when it cannot run.`;

export const EXPLAIN_USAGE = `tessera explain --snapshot FILE --pod FILE [--policy FILE|DIR] [--strategy NAME] [--json]
tessera explain POD -n NAMESPACE [--policy FILE|DIR] [--strategy NAME] [--kubeconfig FILE] [--context NAME] [--json]
  The second form reads the live cluster: --kubeconfig, else $KUBECONFIG, ~/.kube/config or the pod's service account.
  With --policy the pod goes through the webhook's admission first (mutation, then validation), as the API server
  would send it; without, a GPU ask made only with tessera.io/ annotations is not turned into resources (it says so).`;

export const CERTS_USAGE = `tessera certs issue --dir DIR --name NAME (--dns NAME | --ip ADDR)... [--now ISO-TIME]
tessera certs rotate --dir DIR --name NAME (--dns NAME | --ip ADDR)... [--issue-if-missing] [--now ISO-TIME]
tessera certs issue|rotate --secret NAMESPACE/NAME [--ca-secret NAME] --name NAME (--dns NAME | --ip ADDR)...
    [--issue-if-missing] [--webhook-configuration NAME]... [--restart-deployment NAME]... [--kubeconfig FILE]
    [--context NAME] [--now ISO-TIME]
  DIR receives ca.crt (the bundle to trust: caBundle, the scheduler's caFile), tls.crt and tls.key (to serve).
  rotate renews the serving certificate 30 days before it expires (90-day leaves), re-issues it when --name, --dns or
  --ip differ from what it serves, and replaces the CA a year before it expires (10-year CAs) through a 7-day overlap.
  --issue-if-missing: rotate issues when there are no certificates yet (a Job that runs at install and after).
  --now (an ISO 8601 time) pretends the clock says so, for rehearsals.
  --secret keeps them in the cluster: the Secret NAME (type kubernetes.io/tls) gets ca.crt, tls.crt and tls.key, the
  Secret --ca-secret (default NAME-ca) the CA's key; both are updated only under the resourceVersion read. Then every
  webhook of the Mutating and Validating WebhookConfigurations --webhook-configuration gets ca.crt as its caBundle,
  and each --restart-deployment (in NAMESPACE; kube-scheduler reads an extender's caFile once) rolls when its pods
  started before a CA they must trust (the pod template records the bundle's SHA-256 in the annotation tessera.io/ca-bundle-sha256).`;

export const SIMULATE_USAGE = `tessera simulate --nodes NODES.csv --pods PODS.csv [--strategy NAME[,NAME...]] [--seeds 42-51]
                 [--tune 1.3] [--published FILE] [--decisions FILE] [--slivers] [--json]

  Replays an Alibaba openb trace with the FGD paper's protocol and reports unallocated GPU % at
  ${REPORTED_LOADS.join('/')} % arrived load. Strategies: ${Object.keys(STRATEGIES).join(', ')} (default ${DEFAULT_STRATEGY}; "all" runs every one).
  --published defaults to fgd-expected-results/analysis_allo_discrete.csv beside the pod list.
  --slivers also prints where the free GPU capacity sits at 100 % arrived: on CPU/memory-stranded nodes, on whole
  GPUs, or in partial slivers by 100 m of free capacity (mean over seeds, then per seed).`;

export const VERSION_USAGE = 'tessera version [--json]   (also tessera --version)';

export const USAGE_USAGE = `tessera usage --from TIME --to TIME (--prometheus URL [--step 15s] | --snapshots DIR [--policy FILE|DIR])
               [-o table|csv|json] [--json]
  TIME is RFC 3339 (2026-11-27T09:00:00Z), "now", or now minus a duration (-1h, -30m, -7d).
  With --snapshots, the policy defaults to DIR/policy (a soak writes it there).`;
