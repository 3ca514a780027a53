{{/*
Labels of every object's metadata: the base's app.kubernetes.io/part-of, Helm's standard labels, commonLabels.
Selectors and pod templates keep app.kubernetes.io/name alone, as in the base, so that upgrades never change them.
*/}}
{{- define "tessera.labels" -}}
app.kubernetes.io/part-of: tessera
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image of a Tessera component: its own overrides, else image.*, tag defaulting to the appVersion. */}}
{{- define "tessera.image" -}}
{{- $root := index . 0 -}}
{{- $own := index . 1 | default dict -}}
{{- $repository := $own.repository | default $root.Values.image.repository -}}
{{- $digest := $own.digest | default $root.Values.image.digest -}}
{{- if $digest -}}
{{ $repository }}@{{ $digest }}
{{- else -}}
{{ $repository }}:{{ $own.tag | default $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The ConfigMap that holds the policy files. */}}
{{- define "tessera.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default "tessera-policy" -}}
{{- end }}

{{/* Where the webhook and the extender are reached in the cluster: their certificates are issued for these names. */}}
{{- define "tessera.webhookHost" -}}
tessera-webhook.{{ .Release.Namespace }}.svc
{{- end }}
{{- define "tessera.extenderHost" -}}
tessera-extender.{{ .Release.Namespace }}.svc
{{- end }}

{{/* Which way the serving certificates are made: certManager, self or external. */}}
{{- define "tessera.certMode" -}}
{{- if .Values.certManager.enabled -}}
certManager
{{- else if .Values.certs.selfManaged.enabled -}}
self
{{- else -}}
external
{{- end -}}
{{- end }}

{{/*
The scheduling fields of a pod spec: nodeSelector, tolerations, affinity (the component's own, else the pod
anti-affinity it asks for), topologySpreadConstraints. Arguments: the component's values and its name label.
*/}}
{{- define "tessera.placement" -}}
{{- $v := index . 0 -}}
{{- $name := index . 1 -}}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq $v.podAntiAffinity "required" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: { matchLabels: { app.kubernetes.io/name: {{ $name }} } }
        topologyKey: kubernetes.io/hostname
{{- else if eq $v.podAntiAffinity "preferred" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector: { matchLabels: { app.kubernetes.io/name: {{ $name }} } }
          topologyKey: kubernetes.io/hostname
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod and container security context of every Tessera pod: the restricted Pod Security Standard. */}}
{{- define "tessera.podSecurityContext" -}}
securityContext:
  { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: RuntimeDefault } }
{{- end }}
{{- define "tessera.containerSecurityContext" -}}
securityContext:
  { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
{{- end }}

{{/* A PodDisruptionBudget for a component. Arguments: root, component values, name. */}}
{{- define "tessera.pdb" -}}
{{- $root := index . 0 -}}
{{- $v := index . 1 -}}
{{- $name := index . 2 -}}
{{- if $v.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
spec:
  minAvailable: {{ $v.podDisruptionBudget.minAvailable }}
  selector: { matchLabels: { app.kubernetes.io/name: {{ $name }} } }
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot state with a useful message. Included by every template that depends on
them, so `helm template` and `helm install` stop with the message before anything is applied.
*/}}
{{- define "tessera.validate" -}}
{{- if and .Values.policy.existingConfigMap .Values.policy.files -}}
{{- fail "policy.files and policy.existingConfigMap exclude each other: the policy comes from your ConfigMap or from the chart's files, not both" -}}
{{- end -}}
{{- if and .Values.certManager.enabled .Values.certManager.issuerRef (not .Values.certManager.issuerRef.name) -}}
{{- fail "certManager.issuerRef needs a name (and kind: Issuer or ClusterIssuer)" -}}
{{- end -}}
{{- if and (gt (int .Values.scheduler.replicas) 1) (not .Values.scheduler.leaderElect) -}}
{{- fail "scheduler.leaderElect: false with more than one scheduler replica would let them bind the same pods twice" -}}
{{- end -}}
{{- end }}

{{- /* Whether to register the webhooks for KubeVirt's VirtualMachineInstance and VirtualMachine: kubevirt.enabled true
  or false, or auto (the default): only when the cluster serves kubevirt.io/v1 (KubeVirt's CRDs are installed). */ -}}
{{- define "tessera.kubevirt" -}}
{{- $v := .Values.kubevirt.enabled -}}
{{- if eq (toString $v) "auto" -}}
{{- .Capabilities.APIVersions.Has "kubevirt.io/v1" -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}
