import t from 'tap';
import { parse } from 'yaml';
import {
  localSchedulerConfig,
  schedulerConfigYaml,
  shippedSchedulerConfig,
} from '../../controlplane/scheduler-config.ts';
import { benchSchedulerConfig } from '../../bench/live-trace.ts';

// manifests/base/scheduler.yaml: what the e2e suite, the soak and the benchmarks run is the shipped configuration with
// only its connection changed.

type Extender = Record<string, unknown> & { managedResources?: { name: string; ignoredByScheduler: boolean }[] };
type Profile = { schedulerName: string; plugins?: { score?: { disabled?: { name: string }[] } } };

t.test('the shipped profile leaves node ranking to the extender and asks it about every GPU resource', async (t) => {
  const shipped = shippedSchedulerConfig();
  const profile = (shipped.profiles as Profile[]).find((p) => p.schedulerName === 'tessera-scheduler');
  t.ok(profile, 'a tessera-scheduler profile');
  const disabled = (profile!.plugins?.score?.disabled ?? []).map((d) => d.name);
  t.same(disabled.sort(), ['NodeResourcesBalancedAllocation', 'NodeResourcesFit'], 'resource scores off, filters kept');
  const [extender] = shipped.extenders as Extender[];
  const managed = new Map((extender!.managedResources ?? []).map((m) => [m.name, m.ignoredByScheduler]));
  for (const name of ['tessera.io/gpu-milli', 'nvidia.com/gpu', 'nvidia.com/gpu.shared', 'nvidia.com/mig-1g.10gb'])
    t.equal(managed.get(name), false, `${name}: kube-scheduler calls the extender and still checks allocatable`);
  t.equal(managed.get('tessera.io/dra-claims'), true, 'the claim marker is no node resource');
  t.equal(managed.get('tessera.io/devices'), true, 'the device marker is no node resource');
  t.equal(extender!.bindVerb, 'bind', 'the extender binds');
  t.equal(extender!.ignorable, false, 'a GPU pod is never placed without the extender');
});

t.test('the local form changes only where the extender is reached and the leader election', async (t) => {
  const shipped = shippedSchedulerConfig();
  const local = localSchedulerConfig(12345, { httpTimeout: '5s', percentageOfNodesToScore: 50 });
  t.equal(local.leaderElection, undefined);
  t.equal(local.percentageOfNodesToScore, 50);
  const [extender] = local.extenders as Extender[];
  t.equal(extender!.urlPrefix, 'http://127.0.0.1:12345');
  t.equal(extender!.enableHTTPS, false);
  t.equal(extender!.tlsConfig, undefined);
  t.equal(extender!.httpTimeout, '5s');
  const { urlPrefix, enableHTTPS, tlsConfig, httpTimeout, ...rest } = extender!;
  const {
    urlPrefix: _u,
    enableHTTPS: _e,
    tlsConfig: _t,
    httpTimeout: _h,
    ...shippedRest
  } = (shipped.extenders as Extender[])[0]!;
  t.same(rest, shippedRest, 'verbs, weight, managedResources and nodeCacheCapable as shipped');
  t.same(local.profiles, shipped.profiles, 'profiles as shipped');
  t.same(parse(schedulerConfigYaml(local)), local, 'the YAML round-trips');
  t.match(String((shipped.extenders as Extender[])[0]!.urlPrefix), /^https:/, 'the shipped object is not changed');
});

t.test("the live benchmark's knobs change one thing each and say what they came to", async (t) => {
  const shipped = shippedSchedulerConfig();
  const base = benchSchedulerConfig(shipped, 1, {});
  t.same(base.effective, {
    percentageOfNodesToScore: 'adaptive',
    parallelism: '16',
    'extender weight': String((shipped.extenders as Extender[])[0]!.weight),
    'extender httpTimeout': String((shipped.extenders as Extender[])[0]!.httpTimeout),
    'resource scores': 'off',
    'CPU-only pods': 'kube-scheduler alone',
  });
  const on = benchSchedulerConfig(shipped, 1, { resourceScores: 'on', cpuPods: 'extender', percentage: 100 });
  t.equal(on.effective['resource scores'], 'on (MostAllocated)');
  t.equal(on.effective['CPU-only pods'], 'extender');
  t.equal(on.effective.percentageOfNodesToScore, '100');
  const parsed = parse(on.yaml) as { profiles: Profile[]; extenders: Extender[] };
  t.equal(parsed.extenders[0]!.managedResources, undefined, 'no managedResources: every pod goes to the extender');
  t.equal(parsed.profiles[0]!.plugins?.score?.disabled, undefined, 'resource scores back on');
});
