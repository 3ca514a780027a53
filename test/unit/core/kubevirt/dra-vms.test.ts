// DRA devices of VMs: a VMI's ResourceClaims (the vfio class of NVIDIA's DRA driver) reach its launcher pod as claims
// and go through the DRA claim rules (core/dra), at the VMI's admission and at the launcher pod's; an extended resource
// that a DeviceClass backs with DRA is a claim, never an unaccounted accelerator, whatever its domain.

import t from 'tap';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import { staticDraLookup } from '../../../../core/dra/lookup.ts';
import { CONFIG, examplePolicy, NAMESPACES, podRequest } from '../../../fixtures/admission.ts';
import { claimTemplate, deviceClass, DRA_POLICY_TEXT, exactly, NVIDIA_CLASSES } from '../../../fixtures/dra.ts';
import { KUBEVIRT_CONTROLLER, launcherPod, vmi, vmRequest } from '../../../fixtures/kubevirt.ts';
import { pod } from '../../../fixtures/pods.ts';

const WITH_VFIO = examplePolicy(
  DRA_POLICY_TEXT.replace(
    'deviceClasses: [gpu.nvidia.com, mig.nvidia.com]',
    'deviceClasses: [gpu.nvidia.com, mig.nvidia.com, vfio.gpu.nvidia.com]',
  ),
);
const WITHOUT_VFIO = examplePolicy(DRA_POLICY_TEXT);
const OBJECTS = [
  ...NVIDIA_CLASSES.filter((c) => c.metadata?.name !== 'vfio.gpu.nvidia.com'),
  deviceClass('vfio.gpu.nvidia.com', "device.driver == 'gpu.nvidia.com'", 'nvidia.com/vfio-gpu'),
  claimTemplate('passthrough', 'research-a', [exactly('gpu', 'vfio.gpu.nvidia.com')]),
];
const view = () => staticClusterView(NAMESPACES, [], staticDraLookup(OBJECTS));
const draVmi = () =>
  vmi({
    gpus: [{ name: 'g', claimName: 'vfio', requestName: 'gpu' }],
    resourceClaims: [{ name: 'vfio', resourceClaimTemplateName: 'passthrough' }],
  });

t.test('a VMI with a vfio claim: admitted where a pool of the tenant lists the class, denied elsewhere', async (t) => {
  t.equal(WITH_VFIO.pools.find((p) => p.name === 'dra-h100')?.deviceClasses.includes('vfio.gpu.nvidia.com'), true);
  const ok = runAdmission(vmRequest(draVmi()), WITH_VFIO, view(), CONFIG);
  t.equal(ok.response.allowed, true, ok.response.status?.message ?? '');
  const no = runAdmission(vmRequest(draVmi()), WITHOUT_VFIO, view(), CONFIG);
  t.equal(no.response.allowed, false);
  t.match(no.response.status?.message, /vfio\.gpu\.nvidia\.com/);
  // The launcher pod virt-controller renders carries the claim, and is pinned to the dra pool.
  const launcher = launcherPod({});
  launcher.spec!.resourceClaims = [{ name: 'vfio', resourceClaimTemplateName: 'passthrough' }] as never;
  launcher.spec!.containers![0]!.resources!.claims = [{ name: 'vfio', request: 'gpu' }];
  const placed = runAdmission(podRequest(launcher, { user: KUBEVIRT_CONTROLLER }), WITH_VFIO, view(), CONFIG);
  t.equal(placed.response.allowed, true, placed.response.status?.message ?? '');
  t.equal((placed.object as typeof launcher).metadata?.annotations?.['tessera.io/pool'], 'dra-h100');
});

t.test('an extended resource a DeviceClass backs with DRA is a claim, not an unaccounted accelerator', async (t) => {
  const p = pod('vfio').ns('research-a').limit('nvidia.com/vfio-gpu', '1').build();
  const r = runAdmission(podRequest(p), WITH_VFIO, view(), CONFIG);
  t.equal(r.response.allowed, true, r.response.status?.message ?? '');
  t.notMatch(r.response.status?.message ?? '', /tessera\/accelerators/);
  const elsewhere = runAdmission(
    podRequest(pod('x').ns('research-a').limit('nvidia.com/vfio-gpu', '1').build()),
    WITH_VFIO,
    staticClusterView(NAMESPACES, []),
    CONFIG,
  );
  t.match(
    elsewhere.response.status?.message,
    /nvidia\.com\/vfio-gpu is an accelerator resource/,
    'without the class it is a device no pool maps',
  );
});
