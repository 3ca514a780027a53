{{/* tessera-scheduler's KubeSchedulerConfiguration. */}}
{{- define "tessera.schedulerConfig" -}}
{{- $v := .Values.scheduler -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {{ $v.leaderElect }}
  resourceNamespace: {{ .Release.Namespace }}
  resourceName: tessera-scheduler
# A GPU pod whose scheduling attempt failed because the extender was changing leaders is tried again within 2 s.
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 2
{{- if not (kindIs "invalid" $v.percentageOfNodesToScore) }}
percentageOfNodesToScore: {{ $v.percentageOfNodesToScore }}
{{- end }}
profiles:
  - schedulerName: tessera-scheduler
    {{- if not $v.resourceScores.enabled }}
    plugins:
      score:
        # The extender ranks nodes by what they can still hold (GPU best fit, fragmentation, CPU and memory
        # stranding). kube-scheduler's resource scores would break its ties and at times overrule it: LeastAllocated
        # spreads pods, and even MostAllocated cost GPU packing on the openb trace (README, "Live packing"). Their
        # filters stay, and so do the scores that carry what users ask for (preferred node affinity, topology
        # spread, inter-pod affinity, taints).
        disabled:
          - name: NodeResourcesFit
          - name: NodeResourcesBalancedAllocation
    {{- end }}
    {{- if or $v.resourceScores.enabled $v.pluginConfig }}
    pluginConfig:
      {{- if $v.resourceScores.enabled }}
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            {{- toYaml $v.resourceScores.scoringStrategy | nindent 12 }}
      {{- end }}
      {{- with $v.pluginConfig }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
extenders:
  - urlPrefix: https://{{ include "tessera.extenderHost" . }}:8443/scheduler
    filterVerb: filter
    prioritizeVerb: prioritize
    bindVerb: bind
    preemptVerb: preempt
    weight: {{ $v.extender.weight }}
    enableHTTPS: true
    tlsConfig: { caFile: /etc/tessera/extender-ca/ca.crt, serverName: {{ include "tessera.extenderHost" . }} }
    httpTimeout: {{ $v.extender.httpTimeout }}
    nodeCacheCapable: {{ $v.extender.nodeCacheCapable }}
    ignorable: {{ $v.extender.ignorable }}
    managedResources:
      {{- toYaml $v.extender.managedResources | nindent 6 }}
{{- end }}
