import t from 'tap';
import { histogram, histogramPercentile } from '../../node/agent-process.ts';

const text = [
  '# TYPE tessera_agent_allocate_duration_seconds histogram',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.005",outcome="allocated"} 90',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.01",outcome="allocated"} 99',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.025",outcome="allocated"} 100',
  'tessera_agent_allocate_duration_seconds_bucket{le="+Inf",outcome="allocated"} 100',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.005",outcome="refused"} 0',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.01",outcome="refused"} 0',
  'tessera_agent_allocate_duration_seconds_bucket{le="0.025",outcome="refused"} 1',
  'tessera_agent_allocate_duration_seconds_bucket{le="+Inf",outcome="refused"} 1',
  'tessera_agent_allocate_duration_seconds_sum{outcome="allocated"} 0.4',
].join('\n');

t.test('buckets are summed over label sets, +Inf last', async (t) => {
  t.same(histogram(text, 'tessera_agent_allocate_duration_seconds'), [
    [0.005, 90],
    [0.01, 99],
    [0.025, 101],
    [Number.POSITIVE_INFINITY, 101],
  ]);
  t.same(histogram(text, 'tessera_agent_allocate_duration_seconds', (l) => l.includes('refused')).at(-1), [
    Number.POSITIVE_INFINITY,
    1,
  ]);
});

t.test('a percentile is the first bucket bound holding that share of the observations', async (t) => {
  const b = histogram(text, 'tessera_agent_allocate_duration_seconds');
  t.equal(histogramPercentile(b, 50), 0.005);
  t.equal(histogramPercentile(b, 99), 0.025, '99 of 101 is above 98 % but below 99 %');
  t.ok(Number.isNaN(histogramPercentile([], 99)), 'no observation: no percentile');
});
