{{/* tessera-scheduler's KubeSchedulerConfiguration. */}}
{{- define "tessera.schedulerConfig" -}}
{{- $v := .Values.scheduler -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {{ $v.leaderElect }}
  resourceNamespace: {{ .Release.Namespace }}
  resourceName: tessera-scheduler
{{- if not (kindIs "invalid" $v.percentageOfNodesToScore) }}
percentageOfNodesToScore: {{ $v.percentageOfNodesToScore }}
{{- end }}
profiles:
  - schedulerName: tessera-scheduler
    pluginConfig:
      # Pack with the extender rather than against it: the default LeastAllocated scoring spreads pods.
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            {{- toYaml $v.scoringStrategy | nindent 12 }}
      {{- with $v.pluginConfig }}
      {{- toYaml . | nindent 6 }}
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
