{{/* Labels on every object of the chart. */}}
{{- define "catalog.labels" -}}
app.kubernetes.io/name: flightdeck
app.kubernetes.io/part-of: flightdeck
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Name of an extension's installer ServiceAccount. */}}
{{- define "catalog.installerName" -}}
{{- default (printf "%s-installer" .name) .installer.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The operator's own permissions (config/rbac, copied into the bundle's CSV),
written to files/operator-permissions.yaml by `flightdeck bundle`. The
installer must hold them to grant them.
*/}}
{{- define "catalog.operatorClusterRules" -}}
{{- $perms := .Files.Get "files/operator-permissions.yaml" | fromYaml -}}
{{- with $perms.clusterRules }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{- define "catalog.operatorNamespacedRules" -}}
{{- $perms := .Files.Get "files/operator-permissions.yaml" | fromYaml -}}
{{- with $perms.namespacedRules }}{{ toYaml . }}{{ end -}}
{{- end -}}
