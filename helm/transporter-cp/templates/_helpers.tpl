{{/* The release's name for this chart's objects, at most 57 characters: a Service's name
(this name and -api or -agent) is a DNS label, at most 63. */}}
{{- define "transporter-cp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 57 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "transporter-cp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "transporter-cp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "transporter-cp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "transporter-cp.labels" -}}
{{ include "transporter-cp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: transporter
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "transporter-cp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Names agents and producers reach the control plane by inside the cluster. */}}
{{- define "transporter-cp.serviceNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list -}}
{{- range $suffix := list "api" "agent" -}}
{{- $svc := printf "%s-%s" (include "transporter-cp.fullname" $) $suffix -}}
{{- $names = concat $names (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}
{{- concat $names $.Values.agentChannel.tlsSANs | join "," -}}
{{- end -}}

{{- define "transporter-cp.checks" -}}
{{- if eq (int .Values.api.port) (int .Values.agentChannel.port) -}}
{{- fail "api.port and agentChannel.port are the same: the control plane listens on each, so they must differ" -}}
{{- end -}}
{{- if and (eq .Values.store.type "redis") (not .Values.store.redis.existingSecret) -}}
{{- fail "store.type redis needs store.redis.existingSecret: a Secret holding the Redis URL" -}}
{{- end -}}
{{- if and (eq .Values.store.type "sqlite") (not .Values.persistence.enabled) -}}
{{- fail "store.type sqlite keeps every event in the data folder: it needs persistence.enabled (or store.type redis)" -}}
{{- end -}}
{{- if and (not .Values.persistence.enabled) (not .Values.keys.existingSecret) -}}
{{- fail "without persistence the CA and event-signing key would change at every restart, and agents' bundles stop working: give keys.existingSecret" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.serviceMonitor.tokenSecret.name) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.serviceMonitor.tokenSecret.name: a Secret with a token of role read (/metrics needs one)" -}}
{{- end -}}
{{- end -}}
