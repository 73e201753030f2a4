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
The operator's own cluster-wide permissions (config/rbac/cluster_role.yaml,
copied into the bundle's CSV). The installer must hold them to grant them;
tests/packaging fails when the bundle asks for more than these.
*/}}
{{- define "catalog.operatorClusterRules" -}}
- apiGroups: ["flightdeck.dev"]
  resources: ["inferencestacks"]
  verbs: ["list", "watch"]
- apiGroups: ["flightdeck.dev"]
  resources: ["inferencestacks/status"]
  verbs: ["patch"]
- apiGroups: ["flightdeck.dev"]
  resources: ["inferencestacks/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "services"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["list", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The operator's permissions in its own namespace (leader election). */}}
{{- define "catalog.operatorNamespacedRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}
