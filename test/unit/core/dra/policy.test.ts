import t from 'tap';
import { readFileSync } from 'node:fs';
import { compilePolicy, formatProblem } from '../../../../core/policy/compile.ts';
import { poolNamed, tenantNamed } from '../../../../core/policy/model.ts';
import { gpuAsk } from '../../../../core/pools/gpu-ask.ts';
import { planInPool } from '../../../../core/pools/gpu-plan.ts';
import { parseDemand } from '../../../../core/demand.ts';
import { pod } from '../../../fixtures/pods.ts';

const DRA_EXAMPLE = readFileSync(new URL('../../../../../shared/examples/dra/policy.yaml', import.meta.url), 'utf8');
const file = (text: string, name = 'policy.yaml') => ({ name, text });

function compiled(text: string) {
  const r = compilePolicy([file(text)]);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
  return r.policy;
}

const POOL = (extra: string) => `apiVersion: tessera.io/v1alpha1
kind: TesseraPolicy
metadata: { name: p }
spec:
  pools:
    - name: d
      nodeSelector: { tessera.io/pool: d }
${extra}
`;

t.test('the DRA example policy is accepted as it is', async (t) => {
  const p = compiled(DRA_EXAMPLE);
  t.same(
    p.pools.map((x) => [x.name, x.fractionMode, x.deviceClasses]),
    [
      ['shared-h100', 'fraction', []],
      ['a100-mig', 'mig', []],
      ['l4-timesliced', 'time-slicing', []],
      ['sovereign-eu', 'none', []],
      ['dra-h100', 'dra', ['gpu.nvidia.com', 'mig.nvidia.com']],
    ],
  );
  t.match(poolNamed(p, 'dra-h100'), {
    gpuModel: 'H100-SXM5-80GB',
    taint: { key: 'tessera.io/pool', value: 'dra-h100' },
  });
  t.same(tenantNamed(p, 'research')!.pools, ['shared-h100', 'a100-mig', 'l4-timesliced', 'dra-h100']);
  t.same(tenantNamed(p, 'payments-ml')!.pools, ['sovereign-eu', 'shared-h100']);
});

t.test('DRA pool fields are checked beyond the schema', async (t) => {
  const problems = (text: string) => {
    const r = compilePolicy([file(text)]);
    return r.ok ? [] : r.problems.map(formatProblem);
  };
  t.match(problems(POOL('      fractionMode: dra')), [/missing required field "deviceClasses"/]);
  t.match(problems(POOL('      fractionMode: dra\n      deviceClasses: []')), [
    /deviceClasses.*(fewer than 1|must NOT have fewer)/,
  ]);
  t.match(problems(POOL('      fractionMode: none\n      deviceClasses: [gpu.nvidia.com]')), [
    /deviceClasses applies to fractionMode dra only; remove it or set fractionMode: dra \(this pool is none\)/,
  ]);
  t.match(problems(POOL('      fractionMode: dra\n      deviceClasses: [gpu.nvidia.com]\n      replicas: 4')), [
    /replicas applies to time-slicing and mps pools; a dra pool's devices are allocated by kube-scheduler's DRA plugin/,
  ]);
  t.match(problems(POOL('      fractionMode: dra\n      deviceClasses: [GPU_Class]')), [/deviceClasses\/0/]);
  t.same(problems(POOL('      fractionMode: dra\n      deviceClasses: [gpu.nvidia.com, vfio.gpu.nvidia.com]')), []);
});

t.test('annotations on a dra pool become the extended resources NVIDIA DeviceClasses map to DRA', async (t) => {
  const p = compiled(DRA_EXAMPLE);
  const pool = poolNamed(p, 'dra-h100')!;
  const plan = (b: ReturnType<typeof pod>) => {
    const d = parseDemand(b.build());
    if (!d.ok) throw d.error;
    return planInPool(pool, gpuAsk(d.demand));
  };
  t.same(plan(pod('a').annotate('tessera.io/gpu-count', '2')), {
    ok: true,
    plan: { limits: { 'nvidia.com/gpu': '2' }, equivalents: 2 },
  });
  t.same(plan(pod('b').annotate('tessera.io/mig-profile', '3g.40gb')), {
    ok: true,
    plan: { limits: { 'nvidia.com/mig-3g.40gb': '1' }, equivalents: 3 / 7 },
  });
  t.same(plan(pod('c').limit('nvidia.com/gpu', '1')), {
    ok: true,
    plan: { limits: { 'nvidia.com/gpu': '1' }, equivalents: 1 },
  });
  t.match(plan(pod('d').annotate('tessera.io/gpu-fraction', '0.25')), {
    ok: false,
    message:
      /pool dra-h100 gets its GPUs from DRA \(DeviceClasses gpu.nvidia.com, mig.nvidia.com\), and none of them lets several claims share one device, so it cannot give 0.25 of a GPU. Ask for whole GPUs/,
  });
  t.match(plan(pod('e').annotate('tessera.io/mig-profile', '1g.12gb')), {
    ok: false,
    message: /MIG profile 1g.12gb does not exist on H100-SXM5-80GB \(pool dra-h100\); its profiles are 1g.10gb/,
  });
  t.match(plan(pod('f').gpuMilli(500)), { ok: false, message: /cannot give 500 tessera.io\/gpu-milli/ });
});
