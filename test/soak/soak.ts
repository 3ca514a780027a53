// `npm run soak -- --minutes 15 --snapshots DIR` and `npm run soak:short`: Tessera on a living cluster for a while, under
// load and faults, checked from the API alone.
//
// Load: three tenants submit and delete fractional, MIG, time-sliced and whole-GPU pods and Jobs with run times, at a
// steady rate, some at priorities that preempt others, and in bursts of same-second submissions across a tenant's
// namespaces (quota must hold under them: every snapshot checks it over all non-terminated pods). Faults, at seeded
// random times: the extender leader killed with SIGKILL (the standby takes over), the extender rolled out (each replica
// stopped and started again, the leader last; the handoff gap of both is measured by filter calls through the
// Service), a webhook replica killed, kube-scheduler, kube-apiserver and KWOK restarted, a
// policy file corrupted and repaired, the certificates rotated. Record: snapshot-NNNN.json every second and at the
// end, policy/, faults.json. Invariants: every snapshot checked with core's checkInvariants; at the end, with the
// cluster quiet, the extender's gauges against the API and every pending pod's reason and fit. Chargeback: a real
// Prometheus scrapes every replica throughout (chargeback.ts); at the end `tessera usage` from it and from the
// snapshots must agree. Output: pods submitted, finished and preempted, faults by kind, the chargeback comparison,
// violations; exit code 1 on any violation.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import { isTerminated } from '../../core/pod-lifecycle.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { planFaults, type FaultKind, FAULT_KINDS } from './fault-plan.ts';
import { FaultInjector, type HandoffGap } from './faults.ts';
import { gaugeFindings, lostPods, pendingFindings } from './final-checks.ts';
import { LoadGenerator, OUTAGE_REFUSALS, type Refusal } from './load.ts';
import { PolicyFiles } from './policy-files.ts';
import { Recorder, type FaultEntry } from './recorder.ts';
import { until } from './replicas.ts';
import { CERT_CALENDAR } from './certs.ts';
import {
  type ChargebackResult,
  checkChargeback,
  describeRow,
  SCRAPE_INTERVAL_S,
  ScrapeWatch,
  SnapshotGaps,
  startSoakPrometheus,
  TOLERANCE,
} from './chargeback.ts';
import { NAMESPACES, POLICY_FILES, startTopology, type Topology } from './topology.ts';
import { PodTracker } from './tracker.ts';
import type { RunningPrometheus } from '../prometheus/server.ts';
import { neverFits, residents, ROLE_LABEL, WorkloadStream } from './workloads.ts';

const USAGE = `npm run soak -- [--minutes N | --seconds N] [--snapshots DIR] [--seed N] [--rate PODS_PER_SECOND] [--plot FILE.svg]
npm run soak:short            (90 s, its own temporary snapshot directory, removed when the run is clean)
  --plot FILE.svg   GPU-equivalents per tenant over the run, from the soak's Prometheus, with the faults marked`;

interface Profile {
  readonly short: boolean;
  readonly durationMs: number;
  readonly ratePerSecond: number;
  readonly snapshotEveryMs: number;
  readonly warmupMs: number;
  readonly cooldownMs: number;
  readonly minGapMs: number;
  readonly meanGapMs: number;
  readonly downMs: readonly [number, number];
  readonly quietTimeoutMs: number;
}

function profile(values: { minutes?: string; seconds?: string; rate?: string; short?: boolean }): Profile {
  const short = values.short === true;
  const durationMs = values.seconds
    ? Number(values.seconds) * 1000
    : values.minutes
      ? Number(values.minutes) * 60_000
      : short
        ? 90_000
        : 15 * 60_000;
  if (!(durationMs >= 30_000)) throw new Error(`a soak lasts at least 30 s\n\n${USAGE}`);
  const rate = values.rate ? Number(values.rate) : short ? 1.5 : 3.6;
  if (!(rate > 0)) throw new Error(`--rate must be a positive number of pods per second\n\n${USAGE}`);
  return {
    short,
    durationMs,
    ratePerSecond: rate,
    snapshotEveryMs: 1_000,
    warmupMs: short ? 8_000 : 30_000,
    cooldownMs: short ? 12_000 : 60_000,
    minGapMs: short ? 6_500 : 20_000,
    meanGapMs: short ? 6_000 : 45_000,
    downMs: short ? [3_000, 10_000] : [5_000, 30_000],
    quietTimeoutMs: short ? 150_000 : 300_000,
  };
}

const say = (line = ''): void => console.log(line);

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      seconds: { type: 'string' },
      snapshots: { type: 'string' },
      seed: { type: 'string', default: '1' },
      rate: { type: 'string' },
      short: { type: 'boolean', default: false },
      plot: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const p = profile(values);
  const seed = Number(values.seed);
  const ownDir = values.snapshots === undefined;
  const dir = ownDir ? mkdtempSync(join(tmpdir(), 'tessera-soak-')) : resolve(values.snapshots!);
  if (!ownDir) {
    mkdirSync(dir, { recursive: true });
    if (readdirSync(dir).some((f) => f.startsWith('snapshot-')))
      throw new Error(`${dir} already holds snapshots; give the soak an empty directory`);
  }
  const began = Date.now();
  const clock = () => `[${((Date.now() - began) / 1000).toFixed(0).padStart(4)}s]`;
  const progress = (line: string) => say(`${clock()} ${line}`);
  say(
    `SOAK ${(p.durationMs / 60_000).toFixed(1)} min, seed ${seed}, ${p.ratePerSecond} submissions/s, snapshots every ${p.snapshotEveryMs / 1000} s in ${dir}`,
  );
  const start = new Date();
  const topology = await startTopology({ start, progress });
  let code = 1;
  try {
    code = await run(topology, p, seed, dir, start, progress, values.plot ? resolve(values.plot) : null);
  } catch (e) {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  } finally {
    if (code !== 0) copyLogs(topology, dir);
    await topology.stop();
  }
  if (ownDir && code === 0) rmSync(dir, { recursive: true, force: true });
  else say(`snapshots, policy/, faults.json${code === 0 ? '' : ' and the servers’ logs (logs/)'} are in ${dir}`);
  return code;
}

async function run(
  t: Topology,
  p: Profile,
  seed: number,
  dir: string,
  start: Date,
  progress: (line: string) => void,
  plot: string | null,
): Promise<number> {
  progress(
    `starting Prometheus: every extender and webhook replica scraped every ${SCRAPE_INTERVAL_S} s, the recording rules loaded, its TSDB in ${join(dir, 'prometheus')}`,
  );
  const promStartedAt = Date.now();
  const prom = await startSoakPrometheus(t, dir);
  const watch = new ScrapeWatch(prom);
  watch.start();
  try {
    return await runWithPrometheus(t, p, seed, dir, start, progress, plot, prom, watch, promStartedAt);
  } finally {
    watch.stop();
    await prom.stop();
  }
}

async function runWithPrometheus(
  t: Topology,
  p: Profile,
  seed: number,
  dir: string,
  start: Date,
  progress: (line: string) => void,
  plot: string | null,
  prom: RunningPrometheus,
  watch: ScrapeWatch,
  promStartedAt: number,
): Promise<number> {
  const admin = t.client('admin');
  const policy = new PolicyFiles(t.policyDir, POLICY_FILES);
  policy.record(join(dir, 'policy'));
  const recorder = new Recorder(dir, admin, () => policy.inForce());
  const load = new LoadGenerator(new WorkloadStream(seed, { short: p.short }), {
    ratePerSecond: p.ratePerSecond,
    maxInFlight: 16,
    client: t.client,
    burstSize: p.short ? 12 : 16,
    burstEveryMs: p.short ? 15_000 : 30_000,
  });
  const gaps = new SnapshotGaps(p.snapshotEveryMs, () => policy.inForce());
  recorder.onSnapshot = (snapshot) => {
    gaps.add(snapshot);
    for (const pod of lostPods(snapshot, p.short ? 30_000 : 60_000))
      if (pod.metadata?.labels?.[ROLE_LABEL] === 'load')
        void load.deleteHung(pod.metadata.namespace ?? '', pod.metadata.name ?? '');
  };
  const tracker = new PodTracker(admin, (r) => {
    if (!r.fromJob && r.role === 'load') load.cleanUpLater(r.namespace, r.name);
  });
  await tracker.start();
  let injector: FaultInjector | null = null;
  try {
    // The chargeback window opens at a snapshot taken before any pod of the soak exists.
    const first = await recorder.snapshot();
    if (first === null) throw new Error('the first snapshot could not be taken');
    const windowFrom = new Date(first.snapshot.time);
    recorder.start(p.snapshotEveryMs);
    progress('residents: long-running pods of each tenant that must survive every fault');
    for (const s of residents())
      if (!(await load.submit(s))) throw new Error(`resident ${s.namespace}/${s.name} was not admitted`);
    const core = admin.makeApiClient(CoreV1Api);
    const placed = await until(async () => {
      const pods = await Promise.all(
        residents().map((s) => core.readNamespacedPod({ name: s.name, namespace: s.namespace })),
      );
      return pods.every((x) => x.status?.phase === 'Running');
    }, 90_000);
    if (!placed) throw new Error('the residents did not all run within 90 s');

    const plan = planFaults({
      seed: seed + 2,
      fromMs: p.warmupMs,
      toMs: p.durationMs - p.cooldownMs,
      minGapMs: p.minGapMs,
      meanGapMs: p.meanGapMs,
      rotations: CERT_CALENDAR.steps.length,
    });
    progress(
      `load for ${(p.durationMs / 1000).toFixed(0)} s; ${plan.length} faults planned: ${plan.map((f) => `${(f.atMs / 1000).toFixed(0)}s ${f.kind}`).join(', ')}`,
    );
    injector = new FaultInjector(t, policy, recorder, {
      seed: seed + 1,
      startedAt: Date.now(),
      start,
      downMs: p.downMs,
    });
    load.start();
    const faults = injector.run(plan);
    const ticker = setInterval(
      () => {
        const s = load.stats;
        progress(
          `submitted ${s.arrivals}, admitted ${s.admittedPods} pods + ${s.admittedJobs} Jobs, refused ${Object.values(s.refused).reduce((a, b) => a + b, 0)}, snapshots ${recorder.written}, violations ${recorder.violations.length}`,
        );
      },
      p.short ? 15_000 : 60_000,
    );
    await new Promise((r) => setTimeout(r, p.durationMs));
    clearInterval(ticker);
    await load.stop();
    progress('load stopped; waiting for the last faults to be injected and recovered from');
    await faults;
    await injector.settle();

    progress('waiting for the cluster to be quiet');
    const quiet = await waitQuiet(t, p.quietTimeoutMs);
    if (quiet !== null) recorder.violation('end of run', 'quiet', 'cluster', quiet);
    progress('submitting the pods that can never fit; waiting for kube-scheduler to give its reasons');
    await submitNeverFits(t, load);
    await recorder.stop();
    const final = await finalChecks(t, recorder, policy);
    await tracker.addPreemptionEvents().catch(() => 0);
    admissionFindings(load, recorder);
    progress('chargeback: tessera usage from Prometheus and from the snapshots over the soak’s window');
    let chargeback: ChargebackResult | null = null;
    try {
      chargeback = await checkChargeback({
        prom,
        watch,
        promStartedAt,
        dir,
        from: windowFrom,
        to: new Date(recorder.lastTime ?? Date.now()),
        replicas: [...t.extenders, ...t.webhooks],
        gaps,
      });
      for (const f of chargeback.findings) recorder.violation('chargeback', f.invariant, f.subject, f.message);
    } catch (e) {
      recorder.violation('chargeback', 'chargeback-checked', 'usage', e instanceof Error ? e.message : String(e));
    }
    if (plot !== null && chargeback !== null) {
      const { writeChargebackPlot } = await import('./chargeback-plot.ts');
      await writeChargebackPlot(prom.url, windowFrom, new Date(chargeback.to), recorder.faults, plot);
      progress(`plot written to ${plot}`);
    }
    report(p, load, tracker, injector.counts, recorder, final, chargeback, injector.handoffGaps);
    return recorder.violations.length === 0 ? 0 : 1;
  } finally {
    tracker.stop();
    load.cancelTimers();
    injector?.stop();
    await recorder.stop();
    recorder.writeFaults();
  }
}

/** Quiet: every pod of the load has ended (or is gone), no Job is active, both replicas of each server run, one
 * extender leads. Returns null when quiet, or what is still going on. */
async function waitQuiet(t: Topology, timeoutMs: number): Promise<string | null> {
  const admin = t.client('admin');
  const core = admin.makeApiClient(CoreV1Api);
  const batch = admin.makeApiClient(BatchV1Api);
  let busy = '';
  let calmSince = 0;
  const ok = await until(
    async () => {
      const pods = (await core.listPodForAllNamespaces()).items as KubePod[];
      const jobs = (await batch.listJobForAllNamespaces()).items;
      const live = pods.filter(
        (x) =>
          (x.metadata?.namespace ?? '') in NAMESPACES &&
          !isTerminated(x) &&
          !['resident', 'never-fits'].includes(x.metadata?.labels?.[ROLE_LABEL] ?? ''),
      );
      const activeJobs = jobs.filter(
        (j) =>
          !(j.status?.conditions ?? []).some((c) => ['Complete', 'Failed'].includes(c.type) && c.status === 'True'),
      );
      const servers = [...t.webhooks, ...t.extenders].filter((r) => !r.running).map((r) => r.name);
      const leaders = t.extenderProxy.ready();
      busy = [
        live.length
          ? `${live.length} pods of the load still live (${live
              .slice(0, 5)
              .map((x) => `${x.metadata?.namespace}/${x.metadata?.name} ${x.status?.phase}`)
              .join(', ')})`
          : '',
        activeJobs.length ? `${activeJobs.length} Jobs active` : '',
        servers.length ? `not running: ${servers.join(', ')}` : '',
        leaders.length !== 1 ? `${leaders.length} extender replicas in the Service (want exactly the leader)` : '',
      ]
        .filter(Boolean)
        .join('; ');
      if (busy !== '') {
        calmSince = 0;
        return false;
      }
      if (calmSince === 0) calmSince = Date.now();
      // Quiet for a few seconds, so that the informers of every server have seen the last changes.
      return Date.now() - calmSince >= 5_000;
    },
    timeoutMs,
    1_000,
  );
  return ok ? null : `not quiet after ${timeoutMs / 1000} s: ${busy}`;
}

/** The pods that no node can hold, submitted once the load has drained (before, the queue may hold the quota they
 * need); then wait until kube-scheduler has said why each is unschedulable. */
async function submitNeverFits(t: Topology, load: LoadGenerator): Promise<void> {
  const core = t.client('admin').makeApiClient(CoreV1Api);
  for (const s of neverFits()) {
    if (!(await until(() => load.submit(s), 30_000, 2_000))) continue;
    await until(async () => {
      const pod = await core.readNamespacedPod({ name: s.name, namespace: s.namespace });
      return (pod.status?.conditions ?? []).some((c) => c.type === 'PodScheduled' && c.status === 'False');
    }, 60_000);
  }
}

interface FinalResult {
  readonly snapshot: string | null;
  readonly pending: number;
  readonly gauges: number;
}

async function finalChecks(t: Topology, recorder: Recorder, policy: PolicyFiles): Promise<FinalResult> {
  let taken = await recorder.snapshot();
  for (let i = 0; taken === null && i < 10; i++) {
    await new Promise((r) => setTimeout(r, 1_000));
    taken = await recorder.snapshot();
  }
  if (taken === null) {
    recorder.violation('end of run', 'snapshot', 'cluster', 'the final snapshot could not be taken');
    return { snapshot: null, pending: 0, gauges: 0 };
  }
  const where = `${taken.file} (final)`;
  // The leader's gauges: read through its Service stand-in; informers may lag the API by a moment, so retry briefly.
  let gaugeIssues = [] as ReturnType<typeof gaugeFindings>;
  let samples = 0;
  for (let i = 0; i < 10; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${t.extenderProxy.port}/metrics`);
      const text = await res.text();
      samples = text
        .split('\n')
        .filter((l) => /^tessera_(gpu_allocated_milli|tenant_gpu_equivalents)\{/.test(l)).length;
      gaugeIssues = gaugeFindings(text, taken.snapshot, policy.inForce());
    } catch (e) {
      gaugeIssues = [
        { check: 'extender-gauges', subject: 'metrics', message: `cannot read the leader's /metrics: ${String(e)}` },
      ];
    }
    if (gaugeIssues.length === 0) break;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  for (const f of gaugeIssues) recorder.violation(where, f.check, f.subject, f.message);
  const pending = pendingFindings(taken.snapshot, policy.inForce());
  for (const f of pending) recorder.violation(where, f.check, f.subject, f.message);
  const pendingPods = taken.snapshot.pods.filter(
    (x) => !x.spec?.nodeName && !isTerminated(x) && (x.metadata?.namespace ?? '') in NAMESPACES,
  ).length;
  return { snapshot: taken.file, pending: pendingPods, gauges: samples };
}

/** What admission must never do, whatever the fault: admit a pod a rule denies, or fail a call because the API server
 * did not trust the webhook's certificate (rotation must not cause downtime). */
function admissionFindings(load: LoadGenerator, recorder: Recorder): void {
  const s = load.stats;
  for (const b of s.badAdmitted)
    recorder.violation('admission', 'policy-enforced', b, `${b} breaks a policy rule and was admitted`);
  if (s.refused['webhook-tls'] > 0)
    recorder.violation(
      'admission',
      'rotation-without-downtime',
      'webhook',
      `${s.refused['webhook-tls']} admissions failed because the API server did not trust the webhook's certificate`,
    );
}

function report(
  p: Profile,
  load: LoadGenerator,
  tracker: PodTracker,
  faults: Partial<Record<FaultKind, number>>,
  recorder: Recorder,
  final: FinalResult,
  chargeback: ChargebackResult | null,
  handoffGaps: readonly HandoffGap[],
): void {
  const pods = [...tracker.pods.values()].filter((r) => r.role === 'load');
  const jobPods = pods.filter((r) => r.fromJob).length;
  const s = load.stats;
  const submitted = s.admittedPods + jobPods;
  const finished = pods.filter((r) => r.finished !== null);
  const failed = finished.filter((r) => r.finished === 'Failed').length;
  const preempted = [...tracker.pods.values()].filter((r) => r.preempted).length;
  const refused = (Object.entries(s.refused) as [Refusal, number][]).filter(([, n]) => n > 0);
  say();
  say('RESULT');
  say(
    `  pods submitted   ${submitted} in ${(p.durationMs / 60_000).toFixed(1)} min (${s.admittedPods} pods and ${jobPods} pods of ${s.admittedJobs} Jobs admitted, of ${s.arrivals} submissions)`,
  );
  say(`  pods bound       ${pods.filter((r) => r.bound).length}`);
  say(
    `  bursts           ${s.bursts} of ${s.burstSubmissions} submissions in the same second across vision and nlp (tenant research, pods and Jobs, two webhook replicas): ${s.burstAdmitted} admitted, ${s.burstRefusedForQuota} refused for quota`,
  );
  say(`  pods finished    ${finished.length} (${finished.length - failed} succeeded, ${failed} failed)`);
  say(`  pods preempted   ${preempted}`);
  say(`  deleted by users ${s.earlyDeletes} early (changed their minds), ${s.cleanedUp} after they finished`);
  say(
    `  refused          ${refused.map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}${
      Object.keys(s.rules).length
        ? ` (rules: ${Object.entries(s.rules)
            .map(([r, n]) => `${r} ${n}`)
            .join(', ')})`
        : ''
    }`,
  );
  for (const o of s.otherSamples) say(`                   e.g. ${o}`);
  if (s.hung.length > 0)
    say(
      `  lost by KWOK     ${s.hung.length} pods never started or still Running long past their run time, deleted by their user (${s.hung.slice(0, 5).join(', ')}); see kwok.log`,
    );
  const outages = attribute(s.refusalTimes, recorder.faults);
  if (outages.length > 0) say(`  during faults    ${outages.join(', ')}`);
  say(
    `  faults           ${FAULT_KINDS.map((k) => `${k} ${faults[k] ?? 0}`).join(', ')} (${recorder.faults.length} in faults.json)`,
  );
  const longest = (kind: string) => {
    const gaps = handoffGaps.filter((g) => g.kind === kind).map((g) => g.ms);
    return gaps.length === 0 ? 'none measured' : `${(Math.max(...gaps) / 1000).toFixed(1)} s longest of ${gaps.length}`;
  };
  say(
    `  handoff gap      extender rollout ${longest('rollout')}, leader SIGKILL ${longest('leader-kill')} (budget 5 s; filter calls through the Service failing)`,
  );
  for (const g of handoffGaps)
    say(
      `                   ${g.kind} ${(g.ms / 1000).toFixed(1)} s${g.why === null ? '' : ` (first failed call: ${g.why.slice(0, 80)})`}`,
    );
  say(
    `  snapshots        ${recorder.written} written${recorder.skipped.length ? `, ${recorder.skipped.length} not taken (API unavailable)` : ''}; final ${final.snapshot ?? 'none'}`,
  );
  say(`  end of run       ${final.gauges} gauge samples compared with the API; ${final.pending} pending pods checked`);
  if (chargeback !== null) chargebackReport(chargeback);
  else say('  chargeback       not checked (see the violations)');
  say(`  violations       ${recorder.violations.length}`);
  for (const v of recorder.violations.slice(0, 50)) say(`    ${v.where}: [${v.invariant}] ${v.message}`);
  if (recorder.violations.length > 50) say(`    ... and ${recorder.violations.length - 50} more`);
}

function chargebackReport(c: ChargebackResult): void {
  const { total, worst, rows } = c.comparison;
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  say(
    `  chargeback       ${c.from} to ${c.to}: Prometheus ${total.prometheus.toFixed(4)} GPU-h, snapshots ${total.snapshots.toFixed(4)} GPU-h (${pct(total.relative)} apart); peak ${c.peak.toFixed(2)} GPU-equivalents held at once`,
  );
  say(
    `                   ${rows.filter((r) => r.ok).length} of ${rows.length} rows agree (within ${pct(TOLERANCE.relative)}, or ${(TOLERANCE.relative * TOLERANCE.floorGpuHours).toFixed(4)} GPU-h under ${TOLERANCE.floorGpuHours} GPU-h); nearest its tolerance: ${worst ? describeRow(worst) : 'none'}`,
  );
  const cells = rows.map((r) => [
    `${r.tenant || '-'}/${r.namespace}/${r.pool || '-'}`,
    r.prometheus.toFixed(4),
    r.snapshots.toFixed(4),
    r.diff.toFixed(4),
    pct(r.relative),
    r.allowed.toFixed(4),
    r.gapAllowance > 0 ? `(${r.gapAllowance.toFixed(4)} for gaps)` : '',
    r.ok ? '' : 'VIOLATION',
  ]);
  const head = ['tenant/namespace/pool', 'Prometheus', 'snapshots', '|diff|', 'relative', 'allowed', '', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((x) => x[i]!.length)));
  for (const line of [head, ...cells])
    say(
      `                     ${line.map((x, i) => (i === 0 || i >= 6 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ')}`.trimEnd(),
    );
  if (c.gaps.length > 0)
    say(
      `                   ${c.gaps.length} snapshot gap(s) while the API server was down (${c.gaps.map((g) => `${(g / 1000).toFixed(1)} s`).join(', ')}): the pods that changed across them may differ by the gap, ${total.gapAllowance.toFixed(4)} GPU-h in all, added to their rows' tolerance`,
    );
  say(
    `  scrapes          every ${SCRAPE_INTERVAL_S} s: ${c.scrapes.perReplica.map((r) => `${r.replica} ${r.scrapes - r.failed}/${r.scrapes}${r.failed ? ` (${r.whileDown} failed while it was down)` : ''}`).join(', ')}; ${c.scrapes.unexplained.length} failed otherwise, ${c.scrapes.certificate.length} on TLS`,
  );
  say(
    `  per-pod series   exported by ${c.exporters.join(', ') || 'no replica'}; recording rules ${c.rules.healthy}/${c.rules.total} healthy, tenant:tessera_gpu_hours:5m for ${c.rules.tenants} tenants`,
  );
  say('  tessera usage --prometheus URL --from FROM --to TO --step 1s:');
  for (const line of c.table.split('\n')) say(`    ${line}`);
}

/**
 * Outage refusals by cause, each with the faults injected in the 30 s before it (a restart takes a while, so the one
 * that began last is not always the one to blame), e.g. "api-unavailable 7 (apiserver-restart 7)".
 */
function attribute(refusals: readonly { time: number; cause: Refusal }[], faults: readonly FaultEntry[]): string[] {
  const times = faults.map((f) => ({ at: Date.parse(f.time), kind: f.kind }));
  const byCause = new Map<Refusal, Map<string, number>>();
  for (const r of refusals) {
    if (!OUTAGE_REFUSALS.includes(r.cause)) continue;
    const near = [...new Set(times.filter((f) => f.at <= r.time && r.time - f.at <= 30_000).map((f) => f.kind))];
    const after = near.length === 0 ? 'no fault' : near.sort().join(' or ');
    const m = byCause.get(r.cause) ?? new Map<string, number>();
    m.set(after, (m.get(after) ?? 0) + 1);
    byCause.set(r.cause, m);
  }
  return [...byCause].map(([cause, m]) => {
    const total = [...m.values()].reduce((a, b) => a + b, 0);
    return `${cause} ${total} (${[...m].map(([k, n]) => `${n} within 30 s of ${k}`).join(', ')})`;
  });
}

function copyLogs(t: Topology, dir: string): void {
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  for (const f of readdirSync(t.cluster.dir).filter((f) => f.endsWith('.log')))
    if (existsSync(join(t.cluster.dir, f))) cpSync(join(t.cluster.dir, f), join(logs, f));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
