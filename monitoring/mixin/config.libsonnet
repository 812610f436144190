// What a user of the mixin may change. Import mixin.libsonnet and override _config:
//
//   (import 'github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter/monitoring/mixin/mixin.libsonnet') + {
//     _config+:: { iotSelector: 'job="iot-exporter-eu-west-1"', dashboardUid: 'iot-eu-west-1' },
//   }
{
  _config+:: {
    // Selects this exporter's series in every rule. The default takes every job; with
    // several releases (a region or an account each), give each its own job so that one
    // release's alerts and labels never mix with another's.
    iotSelector: 'job!=""',
    // The scrape job(s) of the exporter, for IoTExporterDown and IoTExporterAbsent: they
    // read `up`, which every job has. Matches a standalone job named
    // iot-connectivity-exporter and the chart's ServiceMonitor jobs (named after the
    // release's Service).
    upSelector: 'job=~".*iot-connectivity-exporter.*"',

    // IoTThingDisconnected: how long AWS must have had a thing disconnected (by AWS's
    // own disconnect time, so a restart does not reset it), then how long that must hold.
    // IoTThingKeepAliveTooLong warns when 1.5 x a keep-alive is longer than the first.
    thingOfflineSeconds: 600,
    thingOfflineFor: '5m',

    // IoTExporterNoFirstCycle: how long after its start an exporter with things to poll
    // may take to complete its first poll cycle. Raise it for a large fleet in live mode,
    // whose first pass takes things / poll.max_requests_per_second seconds.
    firstCycleSeconds: 1800,

    // The availability objective of each segment of metrics.rollup_by over 30 days, in
    // percent; the burn-rate alerts spend its error budget.
    availabilityTargetPercent: 99.5,
    availabilityErrorBudget: (100 - self.availabilityTargetPercent) / 100,

    // Where each alert's runbook_url points (%s: the alert's anchor).
    runbookUrl: 'https://github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter/blob/main/docs/alerts.md#%s',

    // The dashboard: give each release its own uid, so that their ConfigMaps never collide.
    dashboardUid: 'iot-connectivity',
    dashboardTitle: 'AWS IoT connectivity',
  },
}
