{{- define "transporter-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "transporter-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "transporter-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "transporter-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "transporter-agent.labels" -}}
{{ include "transporter-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: transporter
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "transporter-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The policy file, from the same values the RBAC is made from. */}}
{{- define "transporter-agent.policy" -}}
version: 1
kinds:
{{- range .Values.policy.kinds }}
  - {{ printf "%s/%s" .group .kind | quote }}
{{- end }}
namespaces:
{{- range .Values.policy.namespaces }}
  - {{ . | quote }}
{{- end }}
clusterScoped: {{ .Values.policy.clusterScoped }}
podSecurity: {{ .Values.policy.podSecurity }}
allow: {{ .Values.policy.allow | toJson }}
{{- end -}}

{{/* The verbs an event needs on its objects: read before, dry run and server-side apply
(patch; create when new), read back; delete for delete events. */}}
{{- define "transporter-agent.objectVerbs" -}}
{{- $verbs := list "get" "create" "patch" -}}
{{- if .Values.rbac.delete }}{{ $verbs = append $verbs "delete" }}{{ end -}}
{{- toJson $verbs -}}
{{- end -}}

{{- define "transporter-agent.apiGroup" -}}
{{- if eq . "core" }}""{{ else }}{{ . | quote }}{{ end -}}
{{- end -}}

{{/* The control plane's URLs, comma-separated as TRANSPORTER_CP_URL takes them: cpUrl, then
cpUrls (its replicas), in the order the agent dials them. */}}
{{- define "transporter-agent.cpUrls" -}}
{{- $urls := list -}}
{{- with .Values.cpUrl }}{{ $urls = append $urls . }}{{ end -}}
{{- join "," (concat $urls .Values.cpUrls) -}}
{{- end -}}

{{/* Checks that stop a chart the agent could not run as it says. */}}
{{- define "transporter-agent.checks" -}}
{{- if not (include "transporter-agent.cpUrls" .) -}}
{{- fail "cpUrl is required: the control plane's agent channel, wss://HOST:PORT/ws" -}}
{{- end -}}
{{- if has .Values.cpUrl .Values.cpUrls -}}
{{- fail (printf "cpUrls holds %s, which is cpUrl: give each control-plane URL once" .Values.cpUrl) -}}
{{- end -}}
{{- range .Values.policy.namespaces -}}
{{- if eq . $.Release.Namespace -}}
{{- fail (printf "policy.namespaces holds %s, the release's namespace, where the agent keeps its journal: events may never touch it; install the chart in a namespace of its own" .) -}}
{{- end -}}
{{- if and (regexMatch "[*?\\[]" .) (not $.Values.rbac.allNamespaces) -}}
{{- fail (printf "policy.namespaces: %s is a pattern, and RBAC grants namespaces by name: list names, or set rbac.allNamespaces" .) -}}
{{- end -}}
{{- end -}}
{{- range .Values.policy.kinds -}}
{{- if and (eq (toString .namespaced) "false") (ne .kind "Namespace") (not $.Values.policy.clusterScoped) -}}
{{- fail (printf "policy.kinds: %s/%s is cluster-scoped: set policy.clusterScoped to allow it" .group .kind) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.impersonate.enabled (not .Values.impersonate.users) -}}
{{- fail "impersonate.enabled needs impersonate.users: the producers' users (transporter:token:NAME)" -}}
{{- end -}}
{{- end -}}

{{/* Whether a kind entry is cluster-scoped (Namespace always is). */}}
{{- define "transporter-agent.clusterScoped" -}}
{{- if or (eq .kind "Namespace") (eq (toString .namespaced) "false") }}true{{ end -}}
{{- end -}}

{{/* labels as TRANSPORTER_LABEL takes them: k=v,k2=v2 */}}
{{- define "transporter-agent.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.labels -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* In the events' namespaces: the RBAC reads there, and the policy's namespaced kinds. */}}
{{- define "transporter-agent.eventRules" -}}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [list]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [get]
{{- if not .Values.impersonate.enabled }}
{{- range .Values.policy.kinds }}
{{- if not (include "transporter-agent.clusterScoped" .) }}
- apiGroups: [{{ include "transporter-agent.apiGroup" .group }}]
  resources: [{{ .resource | quote }}]
  verbs: {{ include "transporter-agent.objectVerbs" $ }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
