{{/*
The labels of every object, the same as deploy/kustomization.yaml's. The
guard's own objects never carry app.kubernetes.io/managed-by=dpfdoctor:
that label marks the grants the guard manages.
*/}}
{{- define "dpfdoctor-guard.labels" -}}
app.kubernetes.io/name: dpfdoctor-guard
app.kubernetes.io/part-of: dpfdoctor
{{- end }}

{{/* The ServiceAccount every binding names. */}}
{{- define "dpfdoctor-guard.subject" -}}
- kind: ServiceAccount
  name: dpfdoctor-guard
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The guard's username, as the API server authenticates its token. */}}
{{- define "dpfdoctor-guard.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:dpfdoctor-guard
{{- end }}

{{/* The names of the grants the guard writes (plan.NamePrefix + the
ServiceAccount), as a YAML flow list. */}}
{{- define "dpfdoctor-guard.grantNames" -}}
[{{ range $i, $sa := .Values.grantServiceAccounts }}{{ if $i }}, {{ end }}{{ printf "dpfdoctor-%s" $sa | quote }}{{ end }}]
{{- end }}

{{/* --metrics-bind-address: "0" disables /metrics. */}}
{{- define "dpfdoctor-guard.metricsAddress" -}}
{{- if not .Values.metrics.enabled -}}
0
{{- else if .Values.metrics.secure -}}
:{{ .Values.metrics.port }}
{{- else -}}
127.0.0.1:{{ .Values.metrics.port }}
{{- end }}
{{- end }}

{{/* Whether a Service (and monitoring) can reach /metrics. */}}
{{- define "dpfdoctor-guard.metricsServed" -}}
{{- if and .Values.metrics.enabled .Values.metrics.secure }}true{{ end }}
{{- end }}

{{/* Combinations values.schema.json cannot express. */}}
{{- define "dpfdoctor-guard.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection) }}
{{- fail "replicas > 1 needs leaderElection: true (only the leader may act)" }}
{{- end }}
{{- if and .Values.monitoring.enabled (not (include "dpfdoctor-guard.metricsServed" .)) }}
{{- fail "monitoring.enabled needs metrics.enabled and metrics.secure (Prometheus scrapes /metrics over HTTPS through the Service)" }}
{{- end }}
{{- end }}
