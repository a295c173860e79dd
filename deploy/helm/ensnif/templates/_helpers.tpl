{{/* Names and labels. */}}
{{- define "ensnif.labels" -}}
app.kubernetes.io/name: ensnif
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ensnif.coordinator.fullname" -}}
{{ printf "%s-coordinator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "ensnif.party.fullname" -}}
{{ printf "%s-party" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "ensnif.coordinator.selector" -}}
app.kubernetes.io/name: ensnif
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: coordinator
{{- end -}}

{{- define "ensnif.party.selector" -}}
app.kubernetes.io/name: ensnif
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: party
{{- end -}}

{{- define "ensnif.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* The Secret holding ca.crt, tls.crt, tls.key: an existing one, or the chart's. */}}
{{- define "ensnif.coordinator.tlsSecret" -}}
{{ .Values.coordinator.tls.existingSecret | default (printf "%s-tls" (include "ensnif.coordinator.fullname" .)) }}
{{- end -}}

{{- define "ensnif.party.tlsSecret" -}}
{{ .Values.party.tls.existingSecret | default (printf "%s-tls" (include "ensnif.party.fullname" .)) }}
{{- end -}}

{{/* The exec probe: gRPC health over mTLS (deploy/healthcheck.py in the image). */}}
{{- define "ensnif.probe" -}}
exec:
  command: ["ensnif-healthcheck", "--config", {{ .config | quote }}, "--timeout", "5"]
initialDelaySeconds: {{ .p.initialDelaySeconds }}
periodSeconds: {{ .p.periodSeconds }}
timeoutSeconds: {{ .p.timeoutSeconds }}
failureThreshold: {{ .p.failureThreshold }}
{{- end -}}
