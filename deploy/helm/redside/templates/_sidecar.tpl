{{/* The sidecar container, the same in both variants (the caller adds restartPolicy or preStop). */}}
{{- define "redside.sidecarContainer" -}}
- name: sidecar
  image: "{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  args:
    - --listen=0.0.0.0:{{ .Values.sidecar.port }}
    - --upstream=http://127.0.0.1:{{ .Values.api.port }}
    - --admin-listen=0.0.0.0:{{ .Values.sidecar.adminPort }}
    - --config=/etc/redside/config/sidecar.toml
    # On the pod's /tmp volume: a restarted container loads plugins without compiling them.
    - --wasm-cache-dir=/tmp/wasm-cache
    {{- include "redside.tracingArgs" (dict "tracing" .Values.tracing "container" .Values.tracing.sidecar) | nindent 4 }}
  env:
    - name: RUST_LOG
      value: {{ .Values.sidecar.logLevel | quote }}
    {{- if .Values.tracing.otlpHeadersSecret }}
    {{- include "redside.tracingEnv" .Values.tracing | nindent 4 }}
    {{- end }}
    {{- with .Values.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.sidecar.port }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.sidecar.adminPort }}
      protocol: TCP
  # /healthz only says the process is up: a native sidecar must start before the API, so its
  # startup cannot wait for the upstream. /readyz (the API accepts connections) gates traffic.
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 2
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- include "redside.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/redside/config
      readOnly: true
    - name: plugins
      mountPath: /etc/redside/plugins
      readOnly: true
    - name: tmp
      mountPath: /tmp
    {{- include "redside.otlpCaMount" .Values.tracing | nindent 4 }}
{{- end }}

{{/* Trace flags of one container (docs/tracing.md): the ratio always (it also decides the
exemplars), export only with an endpoint. */}}
{{- define "redside.tracingArgs" -}}
- --trace-sample-ratio={{ .container.sampleRatio }}
{{- with .tracing.otlpEndpoint }}
- {{ printf "--otlp-endpoint=%s" . | quote }}
{{- end }}
{{- with .container.serviceName }}
- {{ printf "--otel-service-name=%s" . | quote }}
{{- end }}
{{- with .tracing.otlpCompression }}
- {{ printf "--otlp-compression=%s" . | quote }}
{{- end }}
{{- if .tracing.otlpCertificateSecret }}
- --otlp-certificate=/etc/redside/otlp-ca/ca.pem
{{- end }}
{{- end }}

{{/* The mount of tracing.otlpCertificateSecret's CA file, for both containers. */}}
{{- define "redside.otlpCaMount" -}}
{{- if .otlpCertificateSecret -}}
- name: otlp-ca
  mountPath: /etc/redside/otlp-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* OTEL_EXPORTER_OTLP_TRACES_HEADERS from tracing.otlpHeadersSecret, for both containers. */}}
{{- define "redside.tracingEnv" -}}
{{- with .otlpHeadersSecret -}}
- name: OTEL_EXPORTER_OTLP_TRACES_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.otlpHeadersSecretKey | quote }}
{{- end }}
{{- end }}
