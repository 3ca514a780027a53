// The soak's handoff gap: filter calls through a Service stand-in that selects the labelled backend; while no backend
// is selected (a handoff) the calls fail, and the probe measures that outage.

import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HandoffProbe } from '../../soak/handoff-probe.ts';
import { startServiceProxy, type Backend } from '../../soak/service-proxy.ts';

async function backend(name: string): Promise<{ server: Server; backend: Backend }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/readyz' ? '{"ready":true}' : JSON.stringify({ Error: '', NodeNames: [], served: name }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { server, backend: { name, port, readyUrl: `http://127.0.0.1:${port}/readyz` } };
}

t.test('a handoff with no selected backend for a while is measured as an outage of about that long', async (t) => {
  const a = await backend('a');
  const b = await backend('b');
  t.teardown(() => {
    b.server.close();
    b.server.closeAllConnections();
  });
  let leader: string | null = 'a';
  const proxy = await startServiceProxy(
    () => [a.backend, b.backend],
    50,
    async (list) => list.filter((x) => x.name === leader),
  );
  t.teardown(() => proxy.close());
  t.same(proxy.ready(), ['a'], 'only the labelled backend is in rotation');
  const probe = new HandoffProbe(proxy.port);
  probe.start(20);
  t.teardown(() => probe.stop());
  await new Promise((r) => setTimeout(r, 300));
  t.same(probe.outages, [], 'no failed call while a leader is selected');

  const stoppedAt = Date.now();
  leader = null;
  // The old leader stops: no new connection, and its kept-alive ones end.
  a.server.close();
  a.server.closeAllConnections();
  await new Promise((r) => setTimeout(r, 1_500));
  leader = 'b';
  await new Promise((r) => setTimeout(r, 400));
  t.same(proxy.ready(), ['b'], 'the new leader is in rotation');
  const gap = probe.longestBetween(stoppedAt - 200, Date.now());
  t.ok(gap.outage !== null && gap.outage.to !== null, 'one outage, ended');
  // Wide bounds: a busy machine delays timers; the point is that the outage is seen and ends.
  t.ok(gap.ms >= 500 && gap.ms <= 8_000, `about the 1.5 s without a leader: ${gap.ms} ms`);
  t.equal(probe.longestBetween(0, stoppedAt - 300).ms, 0, 'nothing before the handoff');
  const midway = gap.outage!.from + 500;
  t.equal(
    probe.longestBetween(midway, midway + 15_000).ms,
    gap.outage!.to! - midway,
    'an outage under way when the window opens counts from then on',
  );
});

t.test('any filter call can be probed (the real node calls the Service over TLS); failures are counted', async (t) => {
  let failing = false;
  const probe = new HandoffProbe(async () => (failing ? 'Tessera extender not serving: shut down' : null));
  probe.start(10);
  t.teardown(() => probe.stop());
  await new Promise((r) => setTimeout(r, 100));
  const from = Date.now();
  failing = true;
  await new Promise((r) => setTimeout(r, 300));
  failing = false;
  await new Promise((r) => setTimeout(r, 100));
  probe.stop();
  t.ok(probe.calls > 10, `calls made: ${probe.calls}`);
  t.ok(probe.failures > 0 && probe.failures < probe.calls, `some failed: ${probe.failures}`);
  const gap = probe.longestBetween(from, Date.now());
  t.equal(gap.outage?.why, 'Tessera extender not serving: shut down', 'the first failure says why');
  t.ok(gap.ms >= 200 && gap.ms <= 5_000, `about the 300 ms it failed: ${gap.ms} ms`);
});
