// `tessera certs issue|rotate --secret NAMESPACE/NAME`: the certificate state kept in two Secrets instead of a
// directory, for a Job or CronJob in the cluster (the Helm chart runs one): NAME holds what the server mounts (tls.crt,
// tls.key and ca.crt, the keys of a kubernetes.io/tls Secret and of cert-manager's), the CA Secret (--ca-secret,
// default NAME-ca) holds what only rotation needs (the signing CA's key, a CA being introduced), so that the serving
// pods never see a CA key. After each run the clients are brought up to date with the bundle: the caBundle of every
// webhook in the named webhook configurations, and the pod template of Deployments that read the bundle only when they
// start (kube-scheduler reads an extender's caFile once), which then roll.
// Writes are updates that carry the resourceVersion read (a concurrent run fails instead of overwriting), and their
// order leaves any half-done run in a state the next run completes.

import { createHash, X509Certificate } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import { BACKDATE_MS } from '../certs/authority.ts';
import {
  initialState,
  rotate,
  SERVING_FILES,
  splitPem,
  stateFromFiles,
  stateToFiles,
  type CertState,
  type RotationPolicy,
} from '../certs/rotation.ts';
import { describeApiError } from '../server/watched-resource.ts';

/** The pod-template annotation that records which CA bundle a Deployment's pods were started with. */
export const BUNDLE_ANNOTATION = 'tessera.io/ca-bundle-sha256';

export interface SecretRun {
  readonly command: 'issue' | 'rotate';
  readonly namespace: string;
  readonly secret: string;
  readonly caSecret: string;
  readonly policy: RotationPolicy;
  readonly now: Date;
  /** rotate: issue when the Secret holds no certificates yet, instead of failing. */
  readonly issueIfMissing: boolean;
  /** Mutating and Validating WebhookConfigurations (cluster-scoped) whose webhooks trust the bundle. */
  readonly webhookConfigurations: readonly string[];
  /** Deployments in `namespace` whose pods read the bundle only at start. */
  readonly restartDeployments: readonly string[];
}

const code = (e: unknown): number | undefined => (e as { code?: number }).code;

async function orNull<T>(call: () => Promise<T>): Promise<T | null> {
  try {
    return await call();
  } catch (e) {
    if (code(e) === 404) return null;
    throw e;
  }
}

/** Runs one API call, turning a failure into a line that says what was being done and why it failed. */
async function api<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    const status = code(e);
    const hint =
      status === 403
        ? " (the service account lacks this permission: see the chart's certs RBAC)"
        : status === 409
          ? ' (it changed while this run read it: another run? run again)'
          : '';
    throw new Error(`cannot ${what}: ${describeApiError(e)}${hint}`);
  }
}

const decode = (s: V1Secret | null): Record<string, string> =>
  Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

const encode = (files: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** When the newest CA of a bundle was issued (its notBefore is back-dated by BACKDATE_MS). */
export function newestCaIssued(bundle: readonly string[]): number {
  return Math.max(...bundle.map((pem) => new X509Certificate(pem).validFromDate.getTime() + BACKDATE_MS));
}

/**
 * Whether a Deployment's pods must restart to trust the bundle: its pod template records another bundle, or records
 * none and the Deployment is not younger than the bundle's newest CA (pods created after it mounted it already).
 */
export function needsRestart(recorded: string | undefined, created: Date | undefined, bundle: readonly string[]) {
  const wanted = sha256(bundle.join(''));
  if (recorded !== undefined) return recorded !== wanted;
  return created === undefined || created.getTime() <= newestCaIssued(bundle);
}

export async function runWithSecrets(kc: KubeConfig, run: SecretRun): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const { namespace } = run;
  const where = (name: string) => `Secret ${namespace}/${name}`;
  const read = (name: string) =>
    api(`read ${where(name)}`, () => orNull(() => core.readNamespacedSecret({ name, namespace })));
  const [served, ca] = [await read(run.secret), await read(run.caSecret)];
  let state: CertState | null;
  try {
    state = stateFromFiles({ ...decode(ca), ...decode(served) });
  } catch (e) {
    throw new Error(
      `${where(run.secret)} and ${where(run.caSecret)} do not hold a state Tessera can rotate (${(e as Error).message}). ` +
        `A serving certificate without its CA's Secret was not issued here: delete ${run.secret}, or create ` +
        `${run.caSecret} from the directory "tessera certs issue" wrote (ca-signing.crt, ca.key, and next-ca.crt, ` +
        `next-ca.key if present).`,
    );
  }
  const lines: string[] = [];
  let next: CertState;
  let changed = true;
  if (state === null) {
    if (run.command === 'rotate' && !run.issueIfMissing)
      throw new Error(
        `${where(run.secret)} holds no certificates; use "tessera certs issue", or rotate --issue-if-missing`,
      );
    next = initialState(run.policy, run.now);
    lines.push(
      `issued a CA and a serving certificate for ${[...run.policy.dnsNames, ...run.policy.ips].join(', ')} into ${where(run.secret)} (CA in ${run.caSecret})`,
    );
  } else {
    if (run.command === 'issue')
      throw new Error(`${where(run.secret)} already holds certificates; use "tessera certs rotate"`);
    const step = rotate(state, run.policy, run.now);
    next = step.state;
    changed = step.changes.length > 0;
    lines.push(...(changed ? step.changes : ['nothing to rotate']));
  }
  if (changed) {
    const files = stateToFiles(next, run.now);
    const servingData = encode(Object.fromEntries(SERVING_FILES.map((f) => [f, files[f]!])));
    const caData = encode(Object.fromEntries(Object.entries(files).filter(([f]) => !SERVING_FILES.includes(f))));
    const write = async (name: string, existing: V1Secret | null, data: Record<string, string>, type: string) => {
      if (existing === null) {
        await api(`create ${where(name)}`, () =>
          core.createNamespacedSecret({
            namespace,
            body: {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: {
                name,
                namespace,
                labels: { 'app.kubernetes.io/part-of': 'tessera', 'app.kubernetes.io/managed-by': 'tessera-certs' },
              },
              type,
              data,
            },
          }),
        );
        return;
      }
      // The whole data is replaced (a retired next-ca.* goes); metadata and type stay as they are.
      await api(`update ${where(name)}`, () =>
        core.replaceNamespacedSecret({ name, namespace, body: { ...existing, data } }),
      );
    };
    // A new state's CA Secret goes first (a CA Secret alone is issued over on the next run; a serving certificate
    // alone could not be rotated); afterwards the served Secret goes first (a bundle that names a CA the CA Secret
    // does not hold yet is dropped and the CA introduced again on the next run, while the reverse would be refused).
    const writes: [string, V1Secret | null, Record<string, string>, string][] = [
      [run.secret, served, servingData, 'kubernetes.io/tls'],
      [run.caSecret, ca, caData, 'Opaque'],
    ];
    if (served === null) writes.reverse();
    for (const [name, existing, data, type] of writes) await write(name, existing, data, type);
  }

  const bundlePem = next.bundle.join('');
  const caBundle = Buffer.from(bundlePem, 'utf8').toString('base64');
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  for (const name of run.webhookConfigurations) {
    const kinds = [
      {
        kind: 'MutatingWebhookConfiguration',
        get: () => admission.readMutatingWebhookConfiguration({ name }),
        patch: (body: object) => admission.patchMutatingWebhookConfiguration({ name, body }, smp),
      },
      {
        kind: 'ValidatingWebhookConfiguration',
        get: () => admission.readValidatingWebhookConfiguration({ name }),
        patch: (body: object) => admission.patchValidatingWebhookConfiguration({ name, body }, smp),
      },
    ];
    for (const k of kinds) {
      const config = await api(`read ${k.kind} ${name}`, () => orNull(k.get));
      if (config === null) {
        lines.push(`${k.kind} ${name} does not exist (yet): its caBundle is set by a later run`);
        continue;
      }
      const stale = (config.webhooks ?? []).filter((w) => w.clientConfig.caBundle !== caBundle);
      if (stale.length === 0) continue;
      // Strategic merge on the list's key (the webhook's name): only the caBundle of each webhook changes.
      await api(`patch the caBundle of ${k.kind} ${name}`, () =>
        k.patch({ webhooks: stale.map((w) => ({ name: w.name, clientConfig: { caBundle } })) }),
      );
      lines.push(`set the caBundle of ${k.kind} ${name} (${stale.map((w) => w.name).join(', ')})`);
    }
  }

  const apps = kc.makeApiClient(AppsV1Api);
  const wanted = sha256(bundlePem);
  for (const name of run.restartDeployments) {
    const d = await api(`read Deployment ${namespace}/${name}`, () =>
      orNull(() => apps.readNamespacedDeployment({ name, namespace })),
    );
    if (d === null) {
      lines.push(`Deployment ${namespace}/${name} does not exist (yet): nothing to restart`);
      continue;
    }
    const recorded = d.spec?.template.metadata?.annotations?.[BUNDLE_ANNOTATION];
    if (!needsRestart(recorded, d.metadata?.creationTimestamp, splitPem(bundlePem))) continue;
    await api(`restart Deployment ${namespace}/${name}`, () =>
      apps.patchNamespacedDeployment(
        {
          name,
          namespace,
          body: { spec: { template: { metadata: { annotations: { [BUNDLE_ANNOTATION]: wanted } } } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    lines.push(`restarted Deployment ${namespace}/${name}: its pods read the CA bundle only when they start`);
  }
  return lines;
}
