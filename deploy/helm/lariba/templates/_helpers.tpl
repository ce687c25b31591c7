{{/* Names, labels and the pieces every Lariba pod shares. */}}

{{- define "lariba.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lariba.fullname" -}}
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

{{- define "lariba.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "lariba.labels" -}}
helm.sh/chart: {{ include "lariba.chart" . }}
{{ include "lariba.selectorLabels" . }}
app.kubernetes.io/version: {{ include "lariba.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lariba
{{- end }}

{{- define "lariba.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lariba.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels and selector of one component: pass (dict "root" $ "component" "api"). */}}
{{- define "lariba.componentLabels" -}}
{{ include "lariba.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "lariba.componentSelector" -}}
{{ include "lariba.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "lariba.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference: a digest pins the exact image and wins over the tag. */}}
{{- define "lariba.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "lariba.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lariba.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read their secret settings from. */}}
{{- define "lariba.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "lariba.fullname" . }}
{{- end }}
{{- end }}

{{/* The chart's Secret's data; fails the render when a required secret is missing, so a
release never starts pods that production mode would refuse. */}}
{{- define "lariba.secretData" -}}
{{- $s := .Values.secrets -}}
LARIBA_SECRET_KEY: {{ required "secrets.secretKey (32+ random characters) is required unless secrets.existingSecret is set" $s.secretKey | b64enc | quote }}
LARIBA_DATABASE_URL: {{ required "secrets.databaseUrl (postgresql://...) is required unless secrets.existingSecret is set" $s.databaseUrl | b64enc | quote }}
{{- with $s.adminPassword }}
LARIBA_ADMIN_PASSWORD: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.smtpPassword }}
LARIBA_SMTP_PASSWORD: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.secretKeyPrevious }}
LARIBA_SECRET_KEY_PREVIOUS: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* The ConfigMap's data: the operator's settings. */}}
{{- define "lariba.configData" -}}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Settings the chart owns, for every Lariba container. */}}
{{- define "lariba.env" -}}
- name: LARIBA_DATA_DIR
  value: /var/lib/lariba
- name: HOME
  value: /tmp
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* envFrom of every Lariba container: pass (dict "root" $ "configMap" NAME "secret" NAME). */}}
{{- define "lariba.envFrom" -}}
- configMapRef:
    name: {{ .configMap }}
- secretRef:
    name: {{ .secret }}
{{- end }}

{{- define "lariba.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/lariba
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "lariba.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataVolume.sizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when their settings change. */}}
{{- define "lariba.checksums" -}}
checksum/config: {{ include "lariba.configData" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "lariba.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Soft spread over nodes and zones: pass (dict "root" $ "component" "api"). */}}
{{- define "lariba.spread" -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "lariba.componentSelector" . | nindent 6 }}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "lariba.componentSelector" . | nindent 6 }}
{{- end }}
