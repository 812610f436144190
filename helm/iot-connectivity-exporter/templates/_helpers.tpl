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

{{/* The exporter's pod, shared by the Deployment and, sharded, the StatefulSet. */}}
{{- define "iot-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "iot-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Rolls the pods when the rendered config (or the named existing object) changes. */}}
    {{- if or .Values.existingConfigMap .Values.existingSecret }}
    checksum/config: {{ printf "%s/%s/%s" (ternary "secret" "configmap" (not (empty .Values.existingSecret))) (default .Values.existingConfigMap .Values.existingSecret) .Values.configKey | sha256sum }}
    {{- else }}
    checksum/config: {{ include "iot-exporter.configYaml" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "iot-exporter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: exporter
      image: {{ include "iot-exporter.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file=/etc/iot-connectivity-exporter/{{ .Values.configKey }}
        - --web.listen-address=:9689
        - --web.telemetry-path={{ .Values.telemetryPath }}
        - --log.level={{ .Values.logLevel }}
        - --log.format={{ .Values.logFormat }}
        {{- if gt (int .Values.sharding.totalShards) 1 }}
        - --total-shards={{ .Values.sharding.totalShards }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: 9689
          protocol: TCP
      {{- if or .Values.extraEnv (gt (int .Values.sharding.totalShards) 1) }}
      env:
        {{- if gt (int .Values.sharding.totalShards) 1 }}
        {{- /* The shard: the pod-index label (Kubernetes 1.28+), else the name's ordinal. */}}
        - name: IOT_EXPORTER_SHARD
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        - name: IOT_EXPORTER_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/iot-connectivity-exporter
          readOnly: true
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      {{- if .Values.existingSecret }}
      secret:
        secretName: {{ .Values.existingSecret }}
      {{- else }}
      configMap:
        name: {{ default (include "iot-exporter.fullname" .) .Values.existingConfigMap }}
      {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
