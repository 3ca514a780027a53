// The cluster DNS of the real node, in place of CoreDNS (whose image no registry can give this machine): a UDP server
// on the node's bridge address that answers A queries for <service>.<namespace>.svc.<domain> with the Service's
// ClusterIP, read from the API server at each query, and NXDOMAIN for every other name (no upstream). That is all the
// shipped manifests resolve: tessera-scheduler calls https://tessera-extender.tessera-system.svc:8443.

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

const A = 1;
const NXDOMAIN = 3;

interface Question {
  readonly name: string;
  readonly type: number;
  /** Offset of the end of the question section. */
  readonly end: number;
}

function parseQuestion(msg: Buffer): Question | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > 63) return null;
    at++;
    if (len === 0) break;
    labels.push(msg.subarray(at, at + len).toString('latin1'));
    at += len;
  }
  if (at + 4 > msg.length) return null;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(at), end: at + 4 };
}

function reply(query: Buffer, q: Question, rcode: number, ip: string | null): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, the query's opcode and RD, AA; RA off (no recursion).
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x7900) | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ip ? 1 : 0, 6);
  const question = query.subarray(12, q.end);
  if (!ip) return Buffer.concat([header, question]);
  const answer = Buffer.alloc(16);
  answer.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  answer.writeUInt16BE(A, 2);
  answer.writeUInt16BE(1, 4); // IN
  answer.writeUInt32BE(5, 6); // TTL
  answer.writeUInt16BE(4, 10);
  for (const [i, o] of ip.split('.').entries()) answer.writeUInt8(Number(o), 12 + i);
  return Buffer.concat([header, question, answer]);
}

export interface ClusterDns {
  readonly address: string;
  /** Names asked, in order (for the test's account of what resolved). */
  readonly asked: string[];
  close(): Promise<void>;
}

export async function startClusterDns(
  admin: KubeConfig,
  address: string,
  domain = 'cluster.local',
): Promise<ClusterDns> {
  const core = admin.makeApiClient(CoreV1Api);
  const pattern = new RegExp(`^([a-z0-9-]+)\\.([a-z0-9-]+)\\.svc\\.${domain.replaceAll('.', '\\.')}$`);
  const asked: string[] = [];
  const socket: Socket = createSocket('udp4');
  const answer = async (msg: Buffer, from: RemoteInfo): Promise<void> => {
    const q = parseQuestion(msg);
    if (!q) return;
    asked.push(q.name);
    const m = pattern.exec(q.name);
    let ip: string | null = null;
    let known = false;
    if (m) {
      const svc = await core.readNamespacedService({ name: m[1]!, namespace: m[2]! }).catch(() => null);
      known = svc !== null;
      const clusterIP = svc?.spec?.clusterIP;
      if (q.type === A && clusterIP && /^\d+\.\d+\.\d+\.\d+$/.test(clusterIP)) ip = clusterIP;
    }
    // A Service's name with another type (AAAA): no data, not NXDOMAIN, so that the A answer stands.
    socket.send(reply(msg, q, known ? 0 : NXDOMAIN, ip), from.port, from.address);
  };
  socket.on('message', (msg, from) => void answer(msg, from).catch(() => {}));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, address, () => resolve());
  });
  return {
    address,
    asked,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
