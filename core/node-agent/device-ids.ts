// The device IDs the agent advertises to the kubelet: 1000 per GPU, `<GPU UUID>::<n>` (n = 0..999), the
// `<id>::<replica>` form NVIDIA's device plugin uses for time-slicing replicas (k8s-device-plugin
// internal/rm/devices.go AnnotatedID). The kubelet counts them; the UUID in each ID lets a health change name a GPU.
// A device ID may be at most 63 characters (k8s.io/kubelet deviceplugin/v1beta1 api.proto, message Device): a GPU
// UUID is 40, so 45 fit.

export const MILLI_PER_GPU = 1000;
const SEPARATOR = '::';

export function deviceIdsOf(uuid: string): string[] {
  return Array.from({ length: MILLI_PER_GPU }, (_, n) => `${uuid}${SEPARATOR}${n}`);
}

/** The GPU UUID a device ID names, or null for an ID the agent never advertised. */
export function gpuOfDeviceId(id: string): string | null {
  const at = id.lastIndexOf(SEPARATOR);
  if (at <= 0) return null;
  const n = id.slice(at + SEPARATOR.length);
  if (!/^\d{1,3}$/.test(n)) return null;
  return id.slice(0, at);
}
