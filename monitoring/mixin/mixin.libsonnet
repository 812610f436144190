// aws-iot-connectivity-exporter's monitoring mixin: alerts, recording rules and the
// Grafana dashboard, shaped by _config (config.libsonnet). scripts/build-mixin renders it
// into monitoring/alerts.yaml and monitoring/dashboard.json, which the Helm chart ships.
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
