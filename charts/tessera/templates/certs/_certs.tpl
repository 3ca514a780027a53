{{/*
Self-managed certificates: `tessera certs rotate --secret` for the webhook and the extender, side by side in one pod.
Each keeps its state in two Secrets (NAME-tls served, NAME-ca the CA's key), then brings the clients up to date: the
webhook configurations' caBundle, and tessera-scheduler, which reads the extender's CA only when it starts.
*/}}

{{/* The names of the Secrets the jobs read and write. */}}
{{- define "tessera.certSecrets" -}}
[tessera-webhook-tls, tessera-webhook-ca, tessera-extender-tls, tessera-extender-ca]
{{- end }}

{{/*
RBAC of a certificate job's service account. Arguments: root, name, whether it may create the Secrets (the install
hook issues them; the CronJob only rotates what exists), and the hook annotations (empty for the CronJob's).
Kubernetes cannot limit `create` to resource names, so the hook's Role allows creating any Secret in the namespace,
for the length of the hook only (its objects are deleted when it succeeds).
*/}}
{{- define "tessera.certsRbac" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $create := index . 2 -}}
{{- $hook := index . 3 -}}
{{- $ns := $root.Release.Namespace -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
  {{- with $hook }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
  {{- with $hook }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
rules:
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: {{ include "tessera.certSecrets" $root }}
    verbs: [get, update]
  {{- if $create }}
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  {{- end }}
  # tessera-scheduler rolls when the extender's CA bundle gains a CA (its pod template records the bundle's hash).
  - apiGroups: [apps]
    resources: [deployments]
    resourceNames: [tessera-scheduler]
    verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
  {{- with $hook }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: {{ $name }} }
subjects: [{ kind: ServiceAccount, name: {{ $name }}, namespace: {{ $ns }} }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
  {{- with $hook }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
rules:
  # The caBundle of the webhook configurations "tessera", and nothing else.
  - apiGroups: [admissionregistration.k8s.io]
    resources: [mutatingwebhookconfigurations, validatingwebhookconfigurations]
    resourceNames: [tessera]
    verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
  {{- with $hook }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {{ $name }} }
subjects: [{ kind: ServiceAccount, name: {{ $name }}, namespace: {{ $ns }} }]
{{- end }}

{{/* The pod spec of a certificate job. Arguments: root, service account, whether to issue missing certificates. */}}
{{- define "tessera.certsPod" -}}
{{- $root := index . 0 -}}
{{- $sa := index . 1 -}}
{{- $issue := index . 2 -}}
{{- $v := $root.Values.certs.selfManaged -}}
{{- $ns := $root.Release.Namespace -}}
serviceAccountName: {{ $sa }}
restartPolicy: Never
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{ include "tessera.podSecurityContext" $root }}
containers:
  {{- range $component := list "webhook" "extender" }}
  - name: {{ $component }}
    image: {{ include "tessera.image" (list $root dict) }}
    {{- with $root.Values.image.pullPolicy }}
    imagePullPolicy: {{ . }}
    {{- end }}
    args:
      - certs
      - rotate
      - --secret={{ $ns }}/tessera-{{ $component }}-tls
      - --ca-secret=tessera-{{ $component }}-ca
      - --name=tessera-{{ $component }}
      - --dns=tessera-{{ $component }}.{{ $ns }}.svc
      {{- if $issue }}
      - --issue-if-missing
      {{- end }}
      {{- if eq $component "webhook" }}
      - --webhook-configuration=tessera
      {{- else }}
      - --restart-deployment=tessera-scheduler
      {{- end }}
    {{- with $v.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- include "tessera.containerSecurityContext" $root | nindent 4 }}
  {{- end }}
{{- end }}
