{{/* Chart name. */}}
{{- define "siw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release name, plus the chart name unless the release already holds it. */}}
{{- define "siw.fullname" -}}
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

{{- define "siw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "siw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "siw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "siw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: secrets-init
{{- end -}}

{{- define "siw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "siw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference: repository@digest when a digest is set (immutable, preferred),
else repository:tag with the tag defaulting to the chart's appVersion.
Call with (dict "image" .Values.image "root" $).
*/}}
{{- define "siw.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the serving certificate. */}}
{{- define "siw.tlsSecretName" -}}
{{- if eq .Values.certificate.source "secret" -}}
{{- required "certificate.existingSecret is required when certificate.source=secret" .Values.certificate.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "siw.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The webhook's config file (keys spelled like its flags, see contract section 6). */}}
{{- define "siw.config" -}}
listen: "0.0.0.0:8443"
metrics-listen: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
tls-cert: /etc/secrets-init-webhook/tls/tls.crt
tls-key: /etc/secrets-init-webhook/tls/tls.key
mutation-mode: {{ .Values.webhook.mutationMode | quote }}
secrets-init-image: {{ include "siw.imageRef" (dict "image" .Values.secretsInit.image "root" .) | quote }}
{{- with .Values.aws.region }}
aws-region: {{ . | quote }}
{{- end }}
image-swap-template: {{ .Values.webhook.imageSwapTemplate | quote }}
{{- with .Values.webhook.insecureRegistries }}
insecure-registry:
{{- range . }}
  - {{ . | quote }}
{{- end }}
{{- end }}
request-timeout: {{ .Values.webhook.requestTimeout | quote }}
read-timeout: {{ .Values.webhook.readTimeout | quote }}
max-body-bytes: {{ int64 .Values.webhook.maxBodyBytes }}
log-format: {{ .Values.webhook.logFormat | quote }}
shutdown-delay: {{ .Values.webhook.shutdownDelay | quote }}
{{- if .Values.webhook.dockerConfigSecret }}
docker-config: /etc/secrets-init-webhook/docker/config.json
{{- end }}
{{- with .Values.webhook.extraConfig }}
{{- range $k, $v := . }}
{{- if has $k (list "listen" "metrics-listen" "tls-cert" "tls-key" "mutation-mode" "secrets-init-image" "aws-region" "insecure-registry" "image-swap-template" "request-timeout" "max-body-bytes" "read-timeout" "log-format" "docker-config" "shutdown-delay") }}
{{- fail (printf "webhook.extraConfig.%s: the chart sets %s itself; use the matching chart value (see values.yaml) instead" $k $k) }}
{{- end }}
{{- end }}
{{ toYaml . }}
{{- end }}
{{- end -}}
