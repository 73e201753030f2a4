{{/* The InferenceStack's name: nameOverride, else the release name. */}}
{{- define "inference-stack.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 47 | trimSuffix "-" -}}
{{- end -}}
