{{/* Labels on every object; Prometheus selects monitors and rules by the selector labels. */}}
{{- define "monitoring.labels" -}}
app.kubernetes.io/name: flightdeck
app.kubernetes.io/part-of: flightdeck
app.kubernetes.io/component: monitoring
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.prometheusSelectorLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* namespaceSelector for a list of namespaces; empty means any. */}}
{{- define "monitoring.namespaceSelector" -}}
{{- if . }}
matchNames:
  {{- toYaml . | nindent 2 }}
{{- else }}
any: true
{{- end }}
{{- end -}}
