// The kubelet's gRPC APIs, loaded at runtime from the vendored upstream protos (agent/proto, copied unchanged from the
// Go module k8s.io/kubelet v0.37.2, the release test/controlplane/go.mod pins through k8s.io/kubernetes v1.37.2):
// - deviceplugin/v1beta1: Registration (served by the kubelet on kubelet.sock) and DevicePlugin (served by the agent);
// - podresources/v1: PodResourcesLister (served by the kubelet on pod-resources/kubelet.sock).
// Field names keep the proto's spelling (keepCase), e.g. devices_ids, cdi_devices, container_path.

import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const DEVICE_PLUGIN_PROTO = fileURLToPath(new URL('./proto/deviceplugin/v1beta1/api.proto', import.meta.url));
export const POD_RESOURCES_PROTO = fileURLToPath(new URL('./proto/podresources/v1/api.proto', import.meta.url));

/** k8s.io/kubelet pkg/apis/deviceplugin/v1beta1/constants.go */
export const DEVICE_PLUGIN_VERSION = 'v1beta1';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';

const LOAD_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

type ServiceClient = grpc.ServiceClientConstructor;

interface DevicePluginPackage {
  v1beta1: { Registration: ServiceClient; DevicePlugin: ServiceClient };
}
interface PodResourcesPackage {
  v1: { PodResourcesLister: ServiceClient };
}

const devicePlugin = grpc.loadPackageDefinition(
  protoLoader.loadSync(DEVICE_PLUGIN_PROTO, LOAD_OPTIONS),
) as unknown as DevicePluginPackage;
const podResources = grpc.loadPackageDefinition(
  protoLoader.loadSync(POD_RESOURCES_PROTO, LOAD_OPTIONS),
) as unknown as PodResourcesPackage;

export const Registration = devicePlugin.v1beta1.Registration;
export const DevicePlugin = devicePlugin.v1beta1.DevicePlugin;
export const PodResourcesLister = podResources.v1.PodResourcesLister;

export interface WireDevice {
  ID: string;
  health: string;
  topology?: { nodes: { ID: number }[] } | null;
}

export interface WireContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: { container_path: string; host_path: string; read_only: boolean }[];
  devices: { container_path: string; host_path: string; permissions: string }[];
  annotations: Record<string, string>;
  cdi_devices: { name: string }[];
}

export interface WirePodResources {
  name: string;
  namespace: string;
  containers: { name: string; devices: { resource_name: string; device_ids: string[] }[] }[];
}

/** A unix-socket address for grpc-js. */
export const unixAddress = (path: string) => `unix:${path}`;

/** Calls a unary method of a grpc-js client as a promise, with a deadline. */
export function unary<Req, Res>(client: grpc.Client, method: string, request: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
    if (typeof fn !== 'function') {
      reject(new Error(`no gRPC method ${method}`));
      return;
    }
    fn.call(client, request, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}
