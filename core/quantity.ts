// Kubernetes resource quantities (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/),
// reduced to the units Tessera accounts in: CPU in millicores, memory in MiB, counts as integers.

const BINARY: Readonly<Record<string, number>> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};
const PATTERN = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/;

export class QuantityError extends Error {
  override name = 'QuantityError';
}

/** The value of a quantity in base units (cores, bytes, items). Throws QuantityError on malformed input. */
export function parseQuantity(raw: string | number): number {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) throw new QuantityError(`quantity ${raw} is not a finite number`);
    return raw;
  }
  const text = raw.trim();
  const match = PATTERN.exec(text);
  if (!match) {
    throw new QuantityError(`"${raw}" is not a Kubernetes quantity; use forms like "500m", "2", "10Gi" or "1.5G"`);
  }
  const value = Number(match[1]);
  if (match[2] !== undefined) return value * 10 ** Number(match[2].slice(1));
  const suffix = match[3] ?? '';
  return value * (BINARY[suffix] ?? DECIMAL[suffix] ?? 1);
}

/** CPU quantity in millicores, rounded up as the kubelet does. */
export function cpuMilli(raw: string | number): number {
  return Math.ceil(parseQuantity(raw) * 1000 - 1e-9);
}

/** Memory quantity in MiB, rounded up so that a request is never under-counted. */
export function memoryMiB(raw: string | number): number {
  return Math.ceil(parseQuantity(raw) / 2 ** 20 - 1e-9);
}

/** A count quantity (extended resources are integers in Kubernetes). */
export function countOf(raw: string | number): number {
  const value = parseQuantity(raw);
  if (!Number.isInteger(value)) throw new QuantityError(`"${raw}" must be a whole number for this resource`);
  return value;
}
