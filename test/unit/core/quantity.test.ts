import t from 'tap';
import { cpuMilli, memoryMiB, parseQuantity, QuantityError } from '../../../core/quantity.ts';

t.test('parses the Kubernetes quantity forms', async (t) => {
  t.equal(parseQuantity('500m'), 0.5);
  t.equal(parseQuantity('2'), 2);
  t.equal(parseQuantity('10Gi'), 10 * 2 ** 30);
  t.equal(parseQuantity('1.5G'), 1.5e9);
  t.equal(parseQuantity('1e3'), 1000);
  t.equal(parseQuantity(3), 3);
});

t.test('converts to the accounting units, rounding requests up', async (t) => {
  t.equal(cpuMilli('250m'), 250);
  t.equal(cpuMilli('1.0005'), 1001);
  t.equal(memoryMiB('10Gi'), 10240);
  t.equal(memoryMiB('1G'), 954);
});

t.test('rejects malformed quantities with an actionable message', async (t) => {
  t.throws(() => parseQuantity('ten'), QuantityError);
  t.throws(() => parseQuantity('10 Gi'), /"10 Gi" is not a Kubernetes quantity; use forms like/);
  t.throws(() => parseQuantity(Number.NaN), /not a finite number/);
});
