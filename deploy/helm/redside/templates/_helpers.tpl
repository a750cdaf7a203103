{{/* Names, labels, and the values the templates share. */}}

{{- define "redside.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "redside.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "redside.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "redside.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "redside.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redside.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: app
{{- end }}

{{- define "redside.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "redside.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Seconds of a "<N>s" duration (the schema allows only that form where this is used). */}}
{{- define "redside.seconds" -}}
{{- trimSuffix "s" . | int }}
{{- end }}

{{/*
The pod's termination budget, in seconds: the API's preStop delay and drain, then the
sidecar's drain, its wait for a final scrape and its admin listener's 2 s grace, plus 5 s of
slack for signal delivery. Native sidecar: the kubelet stops the sidecar after the API has
exited. Plain container: the sidecar's preStop sleeps through the API's part first.
*/}}
{{- define "redside.apiStopSeconds" -}}
{{- add .Values.api.preStopSleepSeconds .Values.api.shutdownGraceSeconds }}
{{- end }}
{{- define "redside.terminationGracePeriodSeconds" -}}
{{- $l := .Values.sidecar.config.limits }}
{{- add (include "redside.apiStopSeconds" . | int) (include "redside.seconds" $l.grace_period | int) (include "redside.seconds" $l.final_scrape_wait | int) 2 5 }}
{{- end }}

{{/* Where the database URL comes from: name and key of a Secret. */}}
{{- define "redside.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecret }}
{{- else if .Values.database.url -}}
{{ include "redside.fullname" . }}-database
{{- else -}}
{{ include "redside.fullname" . }}-postgresql
{{- end }}
{{- end }}
{{- define "redside.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecretKey }}
{{- else -}}
DATABASE_URL
{{- end }}
{{- end }}

{{/* A TOML value: strings as JSON strings (valid TOML basic strings), whole floats as integers. */}}
{{- define "redside.toml" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if kindIs "float64" . -}}
{{- if eq (floor .) . }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "redside.toml" $v }}{{ end }}]
{{- else if kindIs "map" . -}}
{ {{- range $i, $k := keys . | sortAlpha }}{{ if $i }}, {{ end }}{{ toJson $k }} = {{ include "redside.toml" (get $ $k) }}{{ end -}} }
{{- else -}}
{{ . }}
{{- end -}}
{{- end }}

{{/* The pod's and every container's hardening. */}}
{{- define "redside.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* A GET to the API on localhost from inside its container (no curl in the image: bash's /dev/tcp). */}}
{{- define "redside.apiProbe" -}}
exec:
  command:
    - bash
    - -c
    - {{ printf "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET %s HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200'" (int .root.Values.api.port) .path | quote }}
{{- end }}
