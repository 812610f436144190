{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "iot-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: RELEASE-CHART, unless the release name already contains the chart name. */}}
{{- define "iot-exporter.fullname" -}}
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

{{- define "iot-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iot-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iot-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iot-exporter.labels" -}}
helm.sh/chart: {{ include "iot-exporter.chart" . }}
{{ include "iot-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aws-iot-connectivity-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "iot-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iot-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "iot-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The config file as rendered from .Values.config (only used when no existing object is named). */}}
{{- define "iot-exporter.configYaml" -}}
{{- toYaml .Values.config }}
{{- end }}

{{/* Validates the combination of config sources; fails the render with a clear message. */}}
{{- define "iot-exporter.validate" -}}
{{- if and .Values.existingConfigMap .Values.existingSecret }}
{{- fail "set at most one of existingConfigMap and existingSecret" }}
{{- end }}
{{- if and (not .Values.existingConfigMap) (not .Values.existingSecret) (not .Values.config) }}
{{- fail "config is empty: set config (at least config.aws.region), existingConfigMap or existingSecret" }}
{{- end }}
{{- end }}

{{/* Namespace for optional monitoring objects: their own setting, else the release's. */}}
{{- define "iot-exporter.namespaceOr" -}}
{{- default .root.Release.Namespace .namespace }}
{{- end }}
