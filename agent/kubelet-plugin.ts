// The agent's side of the kubelet device-plugin protocol (k8s.io/kubelet deviceplugin/v1beta1): serve the DevicePlugin
// service on a socket in the kubelet's device-plugin directory, register it on the kubelet's kubelet.sock, and do both
// again whenever the kubelet restarts.
//
// How a kubelet restart shows, read in k8s.io/kubernetes v1.37.2 pkg/kubelet/cm/devicemanager: at start the
// registration server (plugin/v1beta1/server.go Start) calls CleanupPluginDirectory (manager.go), which removes every
// socket in the directory but its checkpoint, ours included, then listens on a new kubelet.sock. NVIDIA's device plugin
// restarts its plugins when inotify reports kubelet.sock created (k8s-device-plugin cmd/nvidia-device-plugin/main.go).
// The agent checks both signs on a short interval: its own socket gone or replaced, or kubelet.sock replaced (a new
// inode). It also retries registration while it is not registered (the kubelet was down). When the plugin's socket
// goes away or its ListAndWatch stream ends, the kubelet marks every device unhealthy (manager.go PluginDisconnected ->
// markResourceUnhealthy), so allocatable drops to 0 and kube-scheduler holds new pods Pending until we are back.

import { EventEmitter } from 'node:events';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  DEVICE_PLUGIN_VERSION,
  DevicePlugin,
  Registration,
  unary,
  unixAddress,
  type WireContainerAllocateResponse,
  type WireDevice,
} from './kubelet-protos.ts';

export interface AllocateRequest {
  container_requests: { devices_ids: string[] }[];
}
export interface PreferredRequest {
  container_requests: { available_deviceIDs: string[]; must_include_deviceIDs: string[]; allocation_size: number }[];
}

export interface PluginHandlers {
  devices(): WireDevice[];
  allocate(request: AllocateRequest): Promise<{ container_responses: WireContainerAllocateResponse[] }>;
  preferred(request: PreferredRequest): Promise<{ container_responses: { deviceIDs: string[] }[] }>;
}

/** An error whose message the kubelet shows in the pod's admission failure. */
export class AllocateRefused extends Error {
  override name = 'AllocateRefused';
}

export interface KubeletPluginOptions {
  /** The kubelet's device-plugin directory (/var/lib/kubelet/device-plugins). */
  readonly pluginDir: string;
  /** Our socket's file name in pluginDir. */
  readonly socketName: string;
  readonly resourceName: string;
  readonly handlers: PluginHandlers;
  readonly log: Logger;
  /** How often to look for a kubelet restart and retry a failed registration. */
  readonly checkIntervalMs?: number;
}

const inodeOf = (path: string): number | null => {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
};

export class KubeletPlugin extends EventEmitter {
  private readonly options: Required<KubeletPluginOptions>;
  private server: grpc.Server | null = null;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, { devices: WireDevice[] }>>();
  private socketInode: number | null = null;
  private kubeletInode: number | null = null;
  private isRegistered = false;
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> = Promise.resolve();
  private closed = false;
  /** Registrations done (1 at start, +1 per kubelet restart). */
  registrations = 0;
  /** Why the last registration attempt failed, or null. */
  problem: string | null = 'not registered yet';

  constructor(options: KubeletPluginOptions) {
    super();
    this.options = { checkIntervalMs: 1_000, ...options };
  }

  get socketPath(): string {
    return join(this.options.pluginDir, this.options.socketName);
  }

  get kubeletSocket(): string {
    return join(this.options.pluginDir, 'kubelet.sock');
  }

  /** Registered with the kubelet now running (the readiness of the agent). */
  get registered(): boolean {
    return this.isRegistered;
  }

  async start(): Promise<void> {
    await this.serialized(() => this.restart('start'));
    this.timer = setInterval(() => void this.serialized(() => this.check()), this.options.checkIntervalMs);
    this.timer.unref();
  }

  /** Tells the kubelet the device list changed (health, GPUs gone). */
  devicesChanged(): void {
    const devices = this.options.handlers.devices();
    for (const s of this.streams) s.write({ devices });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.busy;
    await this.stopServing();
  }

  private serialized(work: () => Promise<void>): Promise<void> {
    this.busy = this.busy.then(work).catch((e: unknown) => {
      this.options.log.error({ err: e }, 'device plugin upkeep failed');
    });
    return this.busy;
  }

  private async check(): Promise<void> {
    if (this.closed) return;
    const socket = inodeOf(this.socketPath);
    const kubelet = inodeOf(this.kubeletSocket);
    if (!this.server) {
      // Serving failed before (at start, or after a kubelet restart): never register a socket nobody serves.
      await this.restart('retrying: our socket could not be served');
    } else if (socket !== this.socketInode) {
      await this.restart(`our socket ${this.socketPath} was removed (the kubelet restarted)`);
    } else if (this.isRegistered && kubelet !== null && kubelet !== this.kubeletInode) {
      await this.restart(`${this.kubeletSocket} was recreated (the kubelet restarted)`);
    } else if (!this.isRegistered && kubelet !== null) {
      await this.register();
    } else if (this.isRegistered && kubelet === null) {
      this.setRegistered(false, `${this.kubeletSocket} is gone (the kubelet stopped)`);
    }
  }

  private async restart(why: string): Promise<void> {
    if (this.closed) return;
    const before = this.problem;
    const retry = this.server === null && before?.startsWith('could not serve ');
    if (!retry) this.options.log.info({ why }, 'serving the device plugin and registering with the kubelet');
    this.setRegistered(false, retry ? before : why);
    await this.stopServing();
    try {
      await this.serve();
    } catch (e) {
      // Retried on every check (e.g. the kubelet's directory is not there yet); logged once per distinct cause.
      const problem = `could not serve ${this.socketPath}: ${(e as Error).message}`;
      if (before !== problem) this.options.log.error({ why }, `${problem}; retrying`);
      this.setRegistered(false, problem);
      return;
    }
    await this.register();
  }

  private setRegistered(value: boolean, problem: string | null): void {
    const was = this.isRegistered;
    this.isRegistered = value;
    this.problem = problem;
    if (was !== value) this.emit(value ? 'registered' : 'unregistered', problem);
  }

  private async serve(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = new grpc.Server();
    const h = this.options.handlers;
    server.addService(DevicePlugin.service, {
      GetDevicePluginOptions: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { pre_start_required: false, get_preferred_allocation_available: true }),
      ListAndWatch: (stream: grpc.ServerWritableStream<unknown, { devices: WireDevice[] }>) => {
        this.streams.add(stream);
        const drop = () => this.streams.delete(stream);
        stream.on('cancelled', drop);
        stream.on('close', drop);
        stream.on('error', drop);
        stream.write({ devices: h.devices() });
      },
      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<PreferredRequest, unknown>,
        cb: grpc.sendUnaryData<object>,
      ) => {
        h.preferred(call.request).then(
          (r) => cb(null, r),
          (e: unknown) => cb(grpcError(e)),
        );
      },
      Allocate: (call: grpc.ServerUnaryCall<AllocateRequest, unknown>, cb: grpc.sendUnaryData<object>) => {
        h.allocate(call.request).then(
          (r) => cb(null, r),
          (e: unknown) => cb(grpcError(e)),
        );
      },
      PreStartContainer: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, {}),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixAddress(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    ).catch((e: unknown) => {
      server.forceShutdown();
      throw e;
    });
    this.server = server;
    this.socketInode = inodeOf(this.socketPath);
  }

  private async stopServing(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.streams) s.end();
    this.streams.clear();
    if (server) {
      server.forceShutdown();
      // Our socket, unless the kubelet already replaced the directory's contents.
      if (inodeOf(this.socketPath) === this.socketInode) rmSync(this.socketPath, { force: true });
    }
    this.socketInode = null;
  }

  private async register(): Promise<void> {
    const kubeletInode = inodeOf(this.kubeletSocket);
    if (kubeletInode === null) {
      this.setRegistered(false, `the kubelet's registration socket ${this.kubeletSocket} does not exist`);
      return;
    }
    const client = new Registration(unixAddress(this.kubeletSocket), grpc.credentials.createInsecure());
    try {
      await unary(
        client,
        'Register',
        {
          version: DEVICE_PLUGIN_VERSION,
          endpoint: this.options.socketName,
          resource_name: this.options.resourceName,
          options: { pre_start_required: false, get_preferred_allocation_available: true },
        },
        5_000,
      );
      this.kubeletInode = kubeletInode;
      this.registrations++;
      this.setRegistered(true, null);
      this.options.log.info(
        { resource: this.options.resourceName, socket: this.socketPath, registrations: this.registrations },
        'registered with the kubelet',
      );
    } catch (e) {
      const why = `registration with ${this.kubeletSocket} failed: ${(e as Error).message}`;
      if (this.problem !== why) this.options.log.warn({ why }, 'not registered with the kubelet');
      this.setRegistered(false, why);
    } finally {
      client.close();
    }
  }
}

function grpcError(e: unknown): Partial<grpc.ServiceError> {
  const refused = e instanceof AllocateRefused;
  return {
    code: refused ? grpc.status.FAILED_PRECONDITION : grpc.status.INTERNAL,
    details: e instanceof Error ? e.message : String(e),
    message: e instanceof Error ? e.message : String(e),
  } as Partial<grpc.ServiceError>;
}
