// The JSON Schema of a TesseraPolicy file (tessera.io/v1alpha1). Strict: unknown keys are errors, so a typo in a
// security team's file is caught before it silently does nothing. `shared/examples/policy.yaml` must validate as is.

const name = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 } as const;
const stringList = { type: 'array', items: { type: 'string', minLength: 1 } } as const;
const quantity = { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$' } as const;
// A fully qualified extended resource name (domain/name), and the same with an optional trailing "*" or a bare "domain/".
const RESOURCE_NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';
const RESOURCE_PATTERN = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/([A-Za-z0-9][-A-Za-z0-9_.]*)?\\*?$';
const action = { enum: ['enforce', 'warn', 'audit'] } as const;
const match = {
  type: 'object',
  additionalProperties: false,
  properties: { tenants: stringList, namespaces: stringList },
} as const;

function rule(kind: string, params: object | null, required = false): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'kind', 'action', ...(required ? ['params'] : [])],
    properties: {
      name,
      kind: { const: kind },
      action,
      match,
      description: { type: 'string' },
      ...(params === null ? {} : { params }),
    },
  };
}

export const POLICY_SCHEMA = {
  $id: 'https://tessera.io/schemas/policy/v1alpha1.json',
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'tessera.io/v1alpha1' },
    kind: { const: 'TesseraPolicy' },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: {
        name,
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        annotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
      additionalProperties: false,
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      properties: {
        schedulerName: { type: 'string', minLength: 1 },
        // Widens (include: exact names, or prefixes ending in "/" or "*") or corrects (exclude: exact names of
        // non-accelerators such as NICs) the built-in list of accelerator resource names (core/accelerators).
        acceleratorResources: {
          type: 'object',
          additionalProperties: false,
          properties: {
            include: { type: 'array', items: { type: 'string', pattern: RESOURCE_PATTERN } },
            exclude: { type: 'array', items: { type: 'string', pattern: RESOURCE_NAME } },
          },
        },
        admins: {
          type: 'object',
          additionalProperties: false,
          properties: { groups: stringList, users: stringList },
        },
        pools: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'nodeSelector', 'fractionMode'],
            properties: {
              name,
              nodeSelector: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
              taint: {
                type: 'object',
                additionalProperties: false,
                required: ['key', 'effect'],
                properties: {
                  key: { type: 'string', minLength: 1 },
                  value: { type: 'string' },
                  effect: { enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] },
                },
              },
              fractionMode: { enum: ['fraction', 'mig', 'time-slicing', 'mps', 'none', 'dra', 'passthrough', 'vgpu'] },
              gpuModel: { type: 'string', minLength: 1 },
              // DeviceClass names (DNS subdomains) that the claims of a dra pool may name.
              deviceClasses: { type: 'array', minItems: 1, uniqueItems: true, items: name },
              resource: { type: 'string', pattern: '^nvidia\\.com/gpu(\\.shared)?$' },
              replicas: { type: 'integer', minimum: 1, maximum: 64 },
              // Device-plugin resources of a passthrough or vgpu pool (KubeVirt's GPU device plugins) and how many of
              // each one physical GPU holds.
              deviceResources: {
                type: 'array',
                minItems: 1,
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['resource', 'perGpu'],
                  properties: {
                    resource: { type: 'string', pattern: RESOURCE_NAME },
                    perGpu: { type: 'integer', minimum: 1, maximum: 64 },
                  },
                },
              },
              // A fraction pool whose nodes run Tessera's node agent (docs/node-agent.md); absent: the downward API.
              delivery: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  mode: { enum: ['auto', 'cdi-cri', 'envvar', 'volume-mounts'] },
                  enforcement: { enum: ['any', 'hami-core', 'mps'] },
                },
              },
            },
            allOf: [
              { if: { properties: { fractionMode: { const: 'mig' } } }, then: { required: ['gpuModel'] } },
              {
                if: { properties: { fractionMode: { enum: ['time-slicing', 'mps'] } } },
                then: { required: ['replicas'] },
              },
              { if: { properties: { fractionMode: { const: 'dra' } } }, then: { required: ['deviceClasses'] } },
              {
                if: { properties: { fractionMode: { enum: ['passthrough', 'vgpu'] } } },
                then: { required: ['deviceResources'] },
              },
            ],
          },
        },
        tenants: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'pools'],
            properties: {
              name,
              pools: { type: 'array', minItems: 1, items: name },
              quota: {
                type: 'object',
                additionalProperties: false,
                properties: { gpus: { type: 'number', minimum: 0 } },
              },
              maxGpusPerPod: { type: 'number', exclusiveMinimum: 0 },
              priorityClasses: stringList,
              shareGpuWith: { enum: ['any', 'same-tenant'] },
              mayPreempt: stringList,
            },
          },
        },
        rules: {
          type: 'array',
          items: {
            type: 'object',
            required: ['kind'],
            properties: {
              kind: {
                enum: ['GpuRequest', 'GpuBypass', 'ImageRegistry', 'RequiredLabels', 'ImmutableFields', 'RuntimeClass'],
              },
            },
            allOf: [
              {
                if: { properties: { kind: { const: 'GpuRequest' } } },
                then: rule('GpuRequest', {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    minFraction: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
                    maxMemory: quantity,
                    requireLimits: { type: 'boolean' },
                  },
                }),
              },
              {
                if: { properties: { kind: { const: 'GpuBypass' } } },
                then: rule('GpuBypass', { type: 'object', additionalProperties: false, properties: {} }),
              },
              {
                if: { properties: { kind: { const: 'ImageRegistry' } } },
                then: rule(
                  'ImageRegistry',
                  {
                    type: 'object',
                    additionalProperties: false,
                    required: ['allowed'],
                    properties: { allowed: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } },
                  },
                  true,
                ),
              },
              {
                if: { properties: { kind: { const: 'RequiredLabels' } } },
                then: rule(
                  'RequiredLabels',
                  {
                    type: 'object',
                    additionalProperties: false,
                    required: ['labels'],
                    properties: {
                      labels: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
                    },
                  },
                  true,
                ),
              },
              {
                if: { properties: { kind: { const: 'ImmutableFields' } } },
                then: rule(
                  'ImmutableFields',
                  {
                    type: 'object',
                    additionalProperties: false,
                    properties: { annotations: stringList, labels: stringList },
                  },
                  true,
                ),
              },
              {
                if: { properties: { kind: { const: 'RuntimeClass' } } },
                then: rule(
                  'RuntimeClass',
                  {
                    type: 'object',
                    additionalProperties: false,
                    required: ['gpuPods'],
                    properties: { gpuPods: { type: 'string', minLength: 1 } },
                  },
                  true,
                ),
              },
            ],
          },
        },
      },
    },
  },
} as const;
