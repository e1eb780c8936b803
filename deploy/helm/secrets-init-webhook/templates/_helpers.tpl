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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
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

{{/*
The effective cluster default mutation mode: the top-level `mutationMode`, or the
deprecated `webhook.mutationMode` when that is set (it wins over a default top-level
value; two different explicit values are refused).
*/}}
{{- define "siw.mutationMode" -}}
{{- $top := .Values.mutationMode | default "init-container" -}}
{{- $old := .Values.webhook.mutationMode | default "" -}}
{{- if and $old (ne $old $top) (ne $top "init-container") -}}
{{- fail (printf "mutationMode (%s) and the deprecated webhook.mutationMode (%s) disagree: set only mutationMode" $top $old) -}}
{{- end -}}
{{- default $top $old -}}
{{- end -}}

{{/* A duration value ("8s", "500ms", "8" = seconds) in milliseconds. */}}
{{- define "siw.durationMs" -}}
{{- $v := toString . | trim -}}
{{- if regexMatch "^[0-9]+ms$" $v -}}
{{- trimSuffix "ms" $v | int -}}
{{- else if regexMatch "^[0-9]+s?$" $v -}}
{{- mul (trimSuffix "s" $v | int) 1000 -}}
{{- else -}}
{{- fail (printf "%q is not a duration of the form 8s, 500ms or 8" $v) -}}
{{- end -}}
{{- end -}}

{{/* Milliseconds as the shortest duration text: 8000 -> 8s, 1500 -> 1500ms. */}}
{{- define "siw.msText" -}}
{{- $ms := int . -}}
{{- if eq (mod $ms 1000) 0 -}}{{ div $ms 1000 }}s{{- else -}}{{ $ms }}ms{{- end -}}
{{- end -}}

{{/*
The webhook's own deadlines, in milliseconds, as "request registry": derived from
webhook.timeoutSeconds (T) unless set explicitly, always strictly below it.
  request  = T - 2s, but at least T/2          (T=10: 8s, T=5: 3s, T=1: 500ms)
  registry = request - 1s, but at least half   (T=10: 7s, T=5: 2s, T=1: 250ms)
*/}}
{{- define "siw.timeoutsMs" -}}
{{- $t := mul (int .Values.webhook.timeoutSeconds) 1000 -}}
{{- $req := 0 -}}
{{- if not (eq (toString .Values.webhook.requestTimeout) "") -}}
{{- $req = include "siw.durationMs" .Values.webhook.requestTimeout | int -}}
{{- if or (ge $req $t) (le $req 0) -}}
{{- fail (printf "webhook.requestTimeout (%v) must be above 0 and strictly below webhook.timeoutSeconds (%ds), or the API server gives up before the webhook answers; leave it empty to derive it" .Values.webhook.requestTimeout (int .Values.webhook.timeoutSeconds)) -}}
{{- end -}}
{{- else -}}
{{- $req = sub $t (min 2000 (div $t 2)) -}}
{{- end -}}
{{- $reg := 0 -}}
{{- if not (eq (toString .Values.webhook.registryTimeout) "") -}}
{{- $reg = include "siw.durationMs" .Values.webhook.registryTimeout | int -}}
{{- if or (ge $reg $t) (le $reg 0) -}}
{{- fail (printf "webhook.registryTimeout (%v) must be above 0 and strictly below webhook.timeoutSeconds (%ds); leave it empty to derive it" .Values.webhook.registryTimeout (int .Values.webhook.timeoutSeconds)) -}}
{{- end -}}
{{- if ge $reg $req -}}
{{- fail (printf "webhook.registryTimeout (%v) must be strictly below the request timeout (%s), which bounds the whole admission; leave it empty to derive it" .Values.webhook.registryTimeout (include "siw.msText" $req)) -}}
{{- end -}}
{{- else -}}
{{- $reg = sub $req (min 1000 (div $req 2)) -}}
{{- end -}}
{{- printf "%d %d" $req $reg -}}
{{- end -}}

{{/* Keys of the webhook config file the chart sets itself (webhook.extraConfig may not). */}}
{{- define "siw.chartConfigKeys" -}}
listen metrics-listen tls-cert tls-key mutation-mode secrets-init-image aws-region insecure-registry image-swap-template request-timeout registry-timeout max-body-bytes read-timeout log-format docker-config shutdown-delay max-connection-age registry-mirror init-container-cpu init-container-memory run-as-user
{{- end -}}

{{/*
The webhook's config file (keys spelled like its flags, see contract section 6).
init-container-cpu/-memory, run-as-user and registry-mirror are written only when they
differ from the webhook's defaults (50m, 64Mi, 65532, none).
*/}}
{{- define "siw.config" -}}
{{- $to := splitList " " (include "siw.timeoutsMs" .) -}}
{{- $ic := .Values.secretsInit.initContainer -}}
listen: {{ printf "0.0.0.0:%d" (int .Values.webhook.port) | quote }}
metrics-listen: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
tls-cert: /etc/secrets-init-webhook/tls/tls.crt
tls-key: /etc/secrets-init-webhook/tls/tls.key
mutation-mode: {{ include "siw.mutationMode" . | quote }}
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
{{- with .Values.webhook.registryMirrors }}
registry-mirror:
{{- range . }}
  - {{ . | quote }}
{{- end }}
{{- end }}
request-timeout: {{ include "siw.msText" (index $to 0) | quote }}
registry-timeout: {{ include "siw.msText" (index $to 1) | quote }}
read-timeout: {{ .Values.webhook.readTimeout | quote }}
max-body-bytes: {{ int64 .Values.webhook.maxBodyBytes }}
log-format: {{ .Values.webhook.logFormat | quote }}
shutdown-delay: {{ .Values.webhook.shutdownDelay | quote }}
max-connection-age: {{ .Values.webhook.maxConnectionAge | toString | quote }}
{{- if .Values.webhook.dockerConfigSecret }}
docker-config: /etc/secrets-init-webhook/docker/config.json
{{- end }}
{{- if ne (toString $ic.cpu) "50m" }}
init-container-cpu: {{ $ic.cpu | quote }}
{{- end }}
{{- if ne (toString $ic.memory) "64Mi" }}
init-container-memory: {{ $ic.memory | quote }}
{{- end }}
{{- if ne (toString $ic.runAsUser) "65532" }}
run-as-user: {{ $ic.runAsUser | toString | quote }}
{{- end }}
{{- with .Values.webhook.extraConfig }}
{{- $own := splitList " " (include "siw.chartConfigKeys" $) -}}
{{- range $k, $v := . }}
{{- if has $k $own }}
{{- fail (printf "webhook.extraConfig.%s: the chart sets %s itself; use the matching chart value (see values.yaml) instead" $k $k) }}
{{- end }}
{{- end }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The default matchConditions (CEL, evaluated by the API server on the AdmissionReview):
a pod is sent only when it has the secretsinit.io/inject annotation (any value: a wrong
one is denied with a message) or an env value holding awssm:/awsssm: in a container or
init container. Every field access is guarded with has(), so a pod without annotations,
env or initContainers evaluates to false instead of an error (which would follow
failurePolicy). deploy/tests/check_cel.py evaluates these against golden pods.
*/}}
{{- define "siw.defaultMatchConditions" -}}
- name: secretsinit-candidate
  expression: >-
    (has(object.metadata.annotations) && 'secretsinit.io/inject' in object.metadata.annotations)
    || (has(object.spec.containers) && object.spec.containers.exists(c, has(c.env)
    && c.env.exists(e, has(e.value) && (e.value.contains('awssm:') || e.value.contains('awsssm:')))))
    || (has(object.spec.initContainers) && object.spec.initContainers.exists(c, has(c.env)
    && c.env.exists(e, has(e.value) && (e.value.contains('awssm:') || e.value.contains('awsssm:')))))
{{- end -}}

{{/*
secrets-init-controller. Its own name label (app.kubernetes.io/name:
secrets-init-controller), so that the webhook's Service, PodDisruptionBudget, spread
constraints and NetworkPolicy, which select the webhook's name label, never select the
controller's pods (and the webhook's selector, immutable in a Deployment, stays as it is).
Names: <fullname>-controller, the fullname cut so the whole stays within 63 characters.
*/}}
{{- define "siw.controllerFullname" -}}
{{- printf "%s-controller" (include "siw.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{- define "siw.controllerSelectorLabels" -}}
app.kubernetes.io/name: secrets-init-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "siw.controllerLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "siw.controllerSelectorLabels" . }}
app.kubernetes.io/component: controller
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: secrets-init
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "siw.controllerServiceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "siw.controllerFullname" .) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A Go/humantime duration made of ms|s|m|h parts ("60s", "2m", "1m30s") in whole seconds,
at least 1 (controller.pollInterval: the PollStale alert's threshold is 5 intervals).
*/}}
{{- define "siw.durationSeconds" -}}
{{- $v := toString . | trim -}}
{{- if not (regexMatch "^([0-9]+(ms|s|m|h))+$" $v) -}}
{{- fail (printf "%q is not a duration of the form 60s, 2m or 1m30s" $v) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" $v -1 -}}
{{- if hasSuffix "ms" . -}}
{{- $ms = add $ms (trimSuffix "ms" . | int) -}}
{{- else if hasSuffix "s" . -}}
{{- $ms = add $ms (mul (trimSuffix "s" . | int) 1000) -}}
{{- else if hasSuffix "m" . -}}
{{- $ms = add $ms (mul (trimSuffix "m" . | int) 60000) -}}
{{- else -}}
{{- $ms = add $ms (mul (trimSuffix "h" . | int) 3600000) -}}
{{- end -}}
{{- end -}}
{{- if lt (int $ms) 1000 -}}
{{- fail (printf "%q: the controller's poll interval must be at least 1s" $v) -}}
{{- end -}}
{{- div $ms 1000 -}}
{{- end -}}
