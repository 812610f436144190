// The alerts. Their summaries are static, so that a notification's title does not change
// with every evaluation; the values are in the descriptions.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: 'iot-connectivity-things',
        rules: [
          // AWS's own disconnect timestamp measures the outage, so an exporter or
          // Prometheus restart does not reset it. The fallback gives a disconnected
          // thing without a reported reason reason="unreported" instead of no alert.
          // Only things whose last poll succeeded count: a failed poll keeps the old
          // state, which may be out of date (IoTThingPollFailing covers those). Every
          // per-thing alert leaves out instance and pod: a restart or a rollout moves the
          // thing to another pod, and must not resolve its alert and fire it again.
          {
            alert: 'IoTThingDisconnected',
            expr: |||
              max without (instance, pod) (
                (
                    (iot_thing_connected{%(iotSelector)s} == 0)
                  + on (job, instance, thing_name) group_left (reason)
                    (
                        (time() - iot_thing_connectivity_timestamp_seconds{%(iotSelector)s})
                      * on (job, instance, thing_name) group_left (reason)
                        (
                            (iot_thing_disconnect_reason_info{%(iotSelector)s} == 1)
                          or on (job, instance, thing_name)
                            label_replace(iot_thing_connected{%(iotSelector)s} == bool 0, "reason", "unreported", "", "")
                        )
                    )
                ) > %(thingOfflineSeconds)s
                and on (job, instance, thing_name)
                  (iot_thing_poll_success{%(iotSelector)s} == 1)
              )
            ||| % $._config,
            'for': $._config.thingOfflineFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT thing {{ $labels.thing_name }} is disconnected ({{ $labels.reason }})',
              description: 'Thing {{ $labels.thing_name }} has been disconnected for {{ $value | humanizeDuration }} according to AWS IoT, with disconnect reason {{ $labels.reason }}.',
              runbook_url: $._config.runbookUrl % 'iotthingdisconnected',
            },
          },
          // Summed over reasons: 3 drops for one reason and 3 for another are 6 drops.
          // A thing's series for a reason is created at 1, on its first such disconnect,
          // and increase() cannot see that first step. So a series that did not exist an
          // hour ago counts its whole value; one that did counts its increase.
          {
            alert: 'IoTThingFlapping',
            expr: |||
              max by (job, thing_name) (
                sum by (job, instance, thing_name) (
                    (increase(iot_thing_disconnects_total{%(iotSelector)s}[1h]) and iot_thing_disconnects_total{%(iotSelector)s} offset 1h)
                  or
                    (iot_thing_disconnects_total{%(iotSelector)s} unless iot_thing_disconnects_total{%(iotSelector)s} offset 1h)
                )
              ) > 5
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT thing {{ $labels.thing_name }} keeps disconnecting',
              description: "Thing {{ $labels.thing_name }} disconnected {{ $value | humanize }} times in the last hour. The dashboard's thing view shows the reasons: DUPLICATE_CLIENTID means two devices or processes share its MQTT client ID; unobserved_flap means the disconnects were too short for polling to see.",
              runbook_url: $._config.runbookUrl % 'iotthingflapping',
            },
          },
          // Two clients with one client ID take turns: each connect ends the other's
          // session with DUPLICATE_CLIENTID. A series created at 1 counts its whole value
          // (see IoTThingFlapping).
          {
            alert: 'IoTThingReconnectLoop',
            expr: |||
              max by (job, thing_name) (
                sum by (job, instance, thing_name) (
                    (increase(iot_thing_disconnects_total{%(iotSelector)s, reason="DUPLICATE_CLIENTID"}[15m])
                      and iot_thing_disconnects_total{%(iotSelector)s} offset 15m)
                  or
                    (iot_thing_disconnects_total{%(iotSelector)s, reason="DUPLICATE_CLIENTID"}
                      unless iot_thing_disconnects_total{%(iotSelector)s} offset 15m)
                )
              ) >= 3
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT thing {{ $labels.thing_name }} is in a reconnect loop',
              description: 'Thing {{ $labels.thing_name }} lost {{ $value | humanize }} sessions to DUPLICATE_CLIENTID in 15 minutes: two devices or processes connect with its client ID and keep taking the connection from each other.',
              runbook_url: $._config.runbookUrl % 'iotthingreconnectloop',
            },
          },
          // Connect attempts AWS refused (lifecycle events: connect_failed).
          {
            alert: 'IoTThingConnectFailing',
            expr: |||
              max by (job, thing_name, failure_type) (
                sum by (job, instance, thing_name, failure_type) (
                    (increase(iot_thing_connect_failures_total{%(iotSelector)s}[15m])
                      and iot_thing_connect_failures_total{%(iotSelector)s} offset 15m)
                  or
                    (iot_thing_connect_failures_total{%(iotSelector)s} unless iot_thing_connect_failures_total{%(iotSelector)s} offset 15m)
                )
              ) >= 3
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: "AWS IoT refuses IoT thing {{ $labels.thing_name }}'s connects ({{ $labels.failure_type }})",
              description: 'AWS IoT refused {{ $value | humanize }} connect attempts of thing {{ $labels.thing_name }} in 15 minutes, with failureType {{ $labels.failure_type }}. The device keeps trying with credentials or a policy that AWS IoT does not accept.',
              runbook_url: $._config.runbookUrl % 'iotthingconnectfailing',
            },
          },
          // AWS drops a silent client only after 1.5 x its keep-alive. Above
          // IoTThingDisconnected's 10 minutes, a device that dies without a word stays
          // "connected" past the point where the offline alert should have fired.
          {
            alert: 'IoTThingKeepAliveTooLong',
            expr: 'max without (instance, pod) (iot_thing_keep_alive_seconds{%(iotSelector)s}) * 1.5 > %(thingOfflineSeconds)s' % $._config,
            'for': '1h',
            labels: { severity: 'info' },
            annotations: {
              summary: "IoT thing {{ $labels.thing_name }}'s keep-alive hides a silent drop",
              description: 'Thing {{ $labels.thing_name }} connects with a keep-alive that lets AWS IoT take {{ $value | humanizeDuration }} to notice it has gone silent, longer than IoTThingDisconnected waits (%(thingOfflineSeconds)s s).' % $._config,
              runbook_url: $._config.runbookUrl % 'iotthingkeepalivetoolong',
            },
          },
        ],
      },
      {
        name: 'iot-connectivity-fleet',
        rules: [
          // Compares the connected share now with its best value over the last 30
          // minutes, so a sudden loss fires whatever the fleet's usual level is.
          // Small fleets (< 10 things) are left to IoTThingDisconnected.
          {
            alert: 'IoTFleetConnectedRatioDrop',
            expr: |||
              (
                  max_over_time((avg by (job) (iot_thing_connected{%(iotSelector)s}))[30m:1m])
                - avg by (job) (iot_thing_connected{%(iotSelector)s})
              ) > 0.10
              and on (job)
                count by (job) (iot_thing_connected{%(iotSelector)s}) >= 10
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT fleet connected share dropped',
              description: 'The share of connected things in job {{ $labels.job }} fell by {{ $value | humanizePercentage }} of the fleet compared with its highest value in the last 30 minutes. Look at the disconnect reasons (IoTThingDisconnectStorm) to tell a device-side outage from a broker or authentication problem.',
              runbook_url: $._config.runbookUrl % 'iotfleetconnectedratiodrop',
            },
          },
          // The share of a segment's things offline, among those that have connected
          // before (never-connected, undeployed things left out), per segment of
          // metrics.rollup_by; without rollup_by the one segment is the fleet. It reads
          // iot_things, which every metrics.per_thing mode keeps. It stays firing as long
          // as the segment stays dark. Segments of fewer than 10 such things are left to
          // IoTThingDisconnected.
          {
            alert: 'IoTFleetSegmentOffline',
            expr: |||
              (
                  sum without (connected) (iot_things{%(iotSelector)s, connected="false"})
                - iot_things_never_connected{%(iotSelector)s}
              )
              /
              (sum without (connected) (iot_things{%(iotSelector)s}) - iot_things_never_connected{%(iotSelector)s})
              > 0.5
              and
              (sum without (connected) (iot_things{%(iotSelector)s}) - iot_things_never_connected{%(iotSelector)s}) >= 10
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Most of an IoT fleet segment is offline',
              description: "In job {{ $labels.job }}, {{ $value | humanizePercentage }} of the things of one segment (its labels are the alert's, from metrics.rollup_by) that have connected before are disconnected now. A site, a thing type or a group has gone dark, or is going.",
              runbook_url: $._config.runbookUrl % 'iotfleetsegmentoffline',
            },
          },
          // Threshold per reason: at least 10 disconnects in 5 minutes, and more than
          // 2% of the targeted things, so a large fleet's background noise stays quiet.
          {
            alert: 'IoTThingDisconnectStorm',
            expr: |||
              sum by (job, reason) (increase(iot_disconnects_total{%(iotSelector)s}[5m]))
              > on (job) group_left ()
                clamp_min(0.02 * sum by (job) (iot_exporter_things_targeted{%(iotSelector)s}), 10)
            ||| % $._config,
            'for': '1m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Storm of IoT disconnects with reason {{ $labels.reason }}',
              description: '{{ $value | humanize }} things in job {{ $labels.job }} disconnected with reason {{ $labels.reason }} in the last 5 minutes. {{ if eq $labels.reason "AUTH_ERROR" }}AUTH_ERROR: certificates revoked, expired or deactivated, or a policy change denies iot:Connect.{{ end }}{{ if eq $labels.reason "DUPLICATE_CLIENTID" }}DUPLICATE_CLIENTID: devices share client IDs (a cloned image or a bad provisioning run).{{ end }}{{ if eq $labels.reason "CONNECTION_LOST" }}CONNECTION_LOST: the network between devices and AWS IoT (a site uplink, a carrier or an AWS regional event).{{ end }}{{ if eq $labels.reason "SERVER_INITIATED_DISCONNECT" }}SERVER_INITIATED_DISCONNECT: AWS IoT closed the connections (maintenance or a service event).{{ end }}{{ if eq $labels.reason "THROTTLED" }}THROTTLED: devices exceed AWS IoT connect or message limits.{{ end }}',
              runbook_url: $._config.runbookUrl % 'iotthingdisconnectstorm',
            },
          },
          // The Google SRE workbook's multi-window, multi-burn-rate alert on the
          // availability objective over 30 days (_config.availabilityTargetPercent), per segment of
          // metrics.rollup_by. Burning 14.4 times faster than the budget allows, over 1 h
          // and the last 5 min, spends 2% of the month's budget in an hour; 6 times over
          // 6 h and 30 min, 5% in 6 hours.
          {
            alert: 'IoTFleetAvailabilityBudgetBurnFast',
            expr: |||
              (
                  (1 - iot_segment:availability:ratio_avg1h{%(iotSelector)s}) > 14.4 * %(availabilityErrorBudget)g
                and
                  (1 - iot_segment:availability:ratio_avg5m{%(iotSelector)s}) > 14.4 * %(availabilityErrorBudget)g
              )
              or
              (
                  (1 - iot_segment:availability:ratio_avg6h{%(iotSelector)s}) > 6 * %(availabilityErrorBudget)g
                and
                  (1 - iot_segment:availability:ratio_avg30m{%(iotSelector)s}) > 6 * %(availabilityErrorBudget)g
              )
            ||| % $._config,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'An IoT fleet segment burns its availability budget fast',
              description: "In job {{ $labels.job }}, {{ $value | humanizePercentage }} of one segment's deployed things (its labels are the alert's) have been offline on average, against a %(availabilityTargetPercent)g%% availability objective: at this rate the month's error budget is gone within days." % $._config,
              runbook_url: $._config.runbookUrl % 'iotfleetavailabilitybudgetburnfast',
            },
          },
          // The slow pair of the same objective: 3 times the budget over 1 d and 2 h
          // (10% of the month's budget in a day), or 1 time over 3 d and 6 h.
          {
            alert: 'IoTFleetAvailabilityBudgetBurnSlow',
            expr: |||
              (
                  (1 - iot_segment:availability:ratio_avg1d{%(iotSelector)s}) > 3 * %(availabilityErrorBudget)g
                and
                  (1 - iot_segment:availability:ratio_avg2h{%(iotSelector)s}) > 3 * %(availabilityErrorBudget)g
              )
              or
              (
                  (1 - iot_segment:availability:ratio_avg3d{%(iotSelector)s}) > %(availabilityErrorBudget)g
                and
                  (1 - iot_segment:availability:ratio_avg6h{%(iotSelector)s}) > %(availabilityErrorBudget)g
              )
            ||| % $._config,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An IoT fleet segment burns its availability budget',
              description: "In job {{ $labels.job }}, {{ $value | humanizePercentage }} of one segment's deployed things have been offline on average over the last days, against a %(availabilityTargetPercent)g%% availability objective: the month's error budget will not last." % $._config,
              runbook_url: $._config.runbookUrl % 'iotfleetavailabilitybudgetburnslow',
            },
          },
          // Sessions that end within 15 s of starting: devices connect and are thrown out
          // again (a reconnect loop, a policy that denies what they do next).
          {
            alert: 'IoTFleetShortSessions',
            expr: 'sum by (job, reason) (increase(iot_session_duration_seconds_bucket{%(iotSelector)s, le="15.0"}[10m])) > 20' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT sessions end within seconds ({{ $labels.reason }})',
              description: '{{ $value | humanize }} connections in job {{ $labels.job }} ended within 15 s of starting in the last 10 minutes, with reason {{ $labels.reason }}.',
              runbook_url: $._config.runbookUrl % 'iotfleetshortsessions',
            },
          },
          // Connect attempts AWS refused from clients that map to no watched thing: a
          // revoked or stolen certificate, a device provisioned under the wrong name.
          {
            alert: 'IoTFleetUnknownClientsFailing',
            expr: 'sum by (job, failure_type) (increase(iot_connect_failures_total{%(iotSelector)s, known_client="false"}[15m])) > 10' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Unknown clients keep failing to connect to AWS IoT ({{ $labels.failure_type }})',
              description: 'AWS IoT refused {{ $value | humanize }} connect attempts in 15 minutes from clients whose ID maps to no thing job {{ $labels.job }} watches, with failureType {{ $labels.failure_type }}.',
              runbook_url: $._config.runbookUrl % 'iotfleetunknownclientsfailing',
            },
          },
        ],
      },
      {
        name: 'iot-connectivity-exporter',
        rules: [
          {
            alert: 'IoTExporterPollsFailing',
            expr: |||
              (
                  count by (job, instance) (iot_thing_poll_success{%(iotSelector)s} == 0)
                / count by (job, instance) (iot_thing_poll_success{%(iotSelector)s})
              ) > 0.10
            ||| % $._config,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT thing polls are failing',
              description: 'The last poll failed for {{ $value | humanizePercentage }} of the things polled by {{ $labels.instance }} (job {{ $labels.job }}). Their connectivity data is kept from the last good poll and goes stale. See iot_thing_poll_error_info for the error codes.',
              runbook_url: $._config.runbookUrl % 'iotexporterpollsfailing',
            },
          },
          {
            alert: 'IoTThingPollFailing',
            expr: 'max without (instance, pod) (iot_thing_poll_error_info{%(iotSelector)s}) == 1' % $._config,
            'for': '30m',
            labels: { severity: 'info' },
            annotations: {
              summary: 'Polling IoT thing {{ $labels.thing_name }} fails with {{ $labels.error_code }}',
              description: 'Every poll of thing {{ $labels.thing_name }} (job {{ $labels.job }}) has failed with {{ $labels.error_code }} for 30 minutes. {{ if eq $labels.error_code "ResourceNotFoundException" }}The thing does not exist in this account and region: remove it from the config or fix its name.{{ end }}',
              runbook_url: $._config.runbookUrl % 'iotthingpollfailing',
            },
          },
          // Per operation: each has its own quota and budget, and a throttled
          // SearchIndex must not hide behind thousands of GetThingConnectivityData calls.
          {
            alert: 'IoTExporterThrottled',
            expr: |||
              (
                  sum by (job, instance, operation) (rate(iot_exporter_api_errors_total{%(iotSelector)s, error_code="ThrottlingException"}[5m]))
                / sum by (job, instance, operation) (rate(iot_exporter_api_requests_total{%(iotSelector)s}[5m]))
              ) > 0.01
            ||| % $._config,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: "AWS IoT throttles the connectivity exporter's {{ $labels.operation }} calls",
              description: "{{ $value | humanizePercentage }} of the {{ $labels.operation }} requests of {{ $labels.instance }} (job {{ $labels.job }}) are throttled. The account's quota is shared with devices and back-ends: lower the operation's budget (poll.max_requests_per_second for GetThingConnectivityData, budgets for the others) or find the other caller.",
              runbook_url: $._config.runbookUrl % 'iotexporterthrottled',
            },
          },
          // Overruns in every 10-minute window for 15 minutes: a lasting shortfall,
          // not the single slow cycle a network blip causes.
          {
            alert: 'IoTExporterPollCycleOverrun',
            expr: 'increase(iot_exporter_poll_cycles_overrun_total{%(iotSelector)s}[10m]) > 0' % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter poll cycles do not finish within the poll interval',
              description: '{{ $labels.instance }} (job {{ $labels.job }}) has poll cycles still running when the next is due, {{ $value | humanize }} in the last 10 minutes, for 15 minutes now: the request budget is too small for the number of things and the interval.',
              runbook_url: $._config.runbookUrl % 'iotexporterpollcycleoverrun',
            },
          },
          // Target sources only: the live poller's failures show in
          // IoTExporterPollsFailing and IoTExporterStale, the aggregates' in their own alerts.
          {
            alert: 'IoTExporterDiscoveryFailing',
            expr: 'iot_exporter_source_last_pass_successful{%(iotSelector)s, source!~"live|aggregates|events"} == 0' % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter source {{ $labels.source }} is failing',
              description: "Every pass of source {{ $labels.source }} on {{ $labels.instance }} (job {{ $labels.job }}) has failed for 15 minutes. It keeps its last good list of things, so things that joined since are not watched and things that left still are. The exporter's log says which call failed and why.",
              runbook_url: $._config.runbookUrl % 'iotexporterdiscoveryfailing',
            },
          },
          {
            alert: 'IoTExporterSourceOverCap',
            expr: 'iot_exporter_source_things_refused{%(iotSelector)s} > 0' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter source {{ $labels.source }} finds more things than max_things',
              description: 'Source {{ $labels.source }} on {{ $labels.instance }} (job {{ $labels.job }}) found {{ $value | humanize }} things beyond its max_things in its last pass and leaves them out: they are not watched. Narrow the source, or raise its max_things if the fleet really is that large.',
              runbook_url: $._config.runbookUrl % 'iotexportersourceovercap',
            },
          },
          {
            alert: 'IoTExporterProblemListCapped',
            expr: 'iot_exporter_problem_things_left_out{%(iotSelector)s} > 0' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter lists only part of the things in trouble',
              description: '{{ $labels.instance }} (job {{ $labels.job }}) has more things in trouble than metrics.max_problem_things and leaves {{ $value | humanize }} of them off /metrics: it keeps those disconnected longest. Alerts that count per-thing series undercount; count from iot_fleet_things or iot_disconnects_total.',
              runbook_url: $._config.runbookUrl % 'iotexporterproblemlistcapped',
            },
          },
          {
            alert: 'IoTExporterRollupCapped',
            expr: 'iot_exporter_rollup_segments_dropped{%(iotSelector)s} > 0' % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter counts some segments only under (other)',
              description: '{{ $labels.instance }} (job {{ $labels.job }}) met {{ $value | humanize }} segments of metrics.rollup_by beyond metrics.max_rollup_segments and counts their things together under "(other)". Roll up by labels with fewer values, or raise the cap.',
              runbook_url: $._config.runbookUrl % 'iotexporterrollupcapped',
            },
          },
          // In the style of kube-state-metrics' KubeStateMetricsShardingMismatch: every
          // shard of a job must be started with the same --total-shards.
          {
            alert: 'IoTExporterShardingMismatch',
            expr: 'stdvar by (job) (iot_exporter_total_shards{%(iotSelector)s}) != 0' % $._config,
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT exporter shards disagree on how many shards there are',
              description: 'The shards of job {{ $labels.job }} run with different --total-shards, so some things are watched by two shards and others by none.',
              runbook_url: $._config.runbookUrl % 'iotexportershardingmismatch',
            },
          },
          // In the style of KubeStateMetricsShardsMissing: fewer distinct shards report than
          // --total-shards says there are, so a share of the fleet is watched by no one.
          {
            alert: 'IoTExporterShardsMissing',
            expr: |||
              max by (job) (iot_exporter_total_shards{%(iotSelector)s})
                - count by (job) (count_values by (job) ("shard", iot_exporter_shard_ordinal{%(iotSelector)s}))
              > 0
            ||| % $._config,
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT exporter shards are missing',
              description: '{{ $value }} of the shards of job {{ $labels.job }} do not report: the things they own are not watched.',
              runbook_url: $._config.runbookUrl % 'iotexportershardsmissing',
            },
          },
          {
            alert: 'IoTExporterAggregatesFailing',
            expr: 'iot_exporter_source_last_pass_successful{%(iotSelector)s, source="aggregates"} == 0' % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter fleet aggregates are failing',
              description: "At least one aggregate query of {{ $labels.instance }} (job {{ $labels.job }}) has failed in every pass for 15 minutes. Its iot_fleet_* series are withdrawn after 3 aggregates.interval. The exporter's log names the query and AWS's error.",
              runbook_url: $._config.runbookUrl % 'iotexporteraggregatesfailing',
            },
          },
          // Passes that stopped completing (a hung call), not passes that fail: those
          // are IoTExporterAggregatesFailing's. Assumes aggregates.interval under 15m.
          {
            alert: 'IoTExporterAggregatesStale',
            expr: |||
              (time() - iot_exporter_source_last_success_timestamp_seconds{%(iotSelector)s, source="aggregates"} > 900)
              unless on (job, instance)
              (iot_exporter_source_last_pass_successful{%(iotSelector)s, source="aggregates"} == 0)
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter fleet aggregates are stale',
              description: 'The last aggregates pass of {{ $labels.instance }} (job {{ $labels.job }}) completed {{ $value | humanizeDuration }} ago and none has completed since. The iot_fleet_* series are withdrawn after 3 aggregates.interval.',
              runbook_url: $._config.runbookUrl % 'iotexporteraggregatesstale',
            },
          },
          // Only once a first cycle has succeeded (the gauge is 0 until then: time() - 0 is
          // always "stale"), and only with things to poll (with aggregates alone, or an
          // empty target list, no cycle polls anything). IoTExporterNoFirstCycle covers the
          // time before the first success.
          {
            alert: 'IoTExporterStale',
            expr: |||
              time() - iot_exporter_last_poll_success_timestamp_seconds{%(iotSelector)s} > 600
              and on (job, instance) (iot_exporter_last_poll_success_timestamp_seconds{%(iotSelector)s} > 0)
              and on (job, instance) (iot_exporter_things_targeted{%(iotSelector)s} > 0)
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT exporter has stopped completing poll cycles',
              description: 'The last poll cycle of {{ $labels.instance }} (job {{ $labels.job }}) completed {{ $value | humanizeDuration }} ago. Its per-thing data is withdrawn once older than poll.staleness, so IoT alerts go blind.',
              runbook_url: $._config.runbookUrl % 'iotexporterstale',
            },
          },
          // From the process's start: a first pass of a large fleet in live mode takes
          // N / budget seconds (about 30 min at 100,000 things and 50 requests a second).
          {
            alert: 'IoTExporterNoFirstCycle',
            expr: |||
              time() - process_start_time_seconds{%(iotSelector)s} > %(firstCycleSeconds)s
              and on (job, instance) (iot_exporter_last_poll_success_timestamp_seconds{%(iotSelector)s} == 0)
              and on (job, instance) (iot_exporter_things_targeted{%(iotSelector)s} > 0)
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT exporter has not completed its first poll cycle',
              description: 'Exporter {{ $labels.instance }} (job {{ $labels.job }}) started {{ $value | humanizeDuration }} ago and has things to poll, but no poll cycle with a successful poll has completed yet. Nothing it shows about the fleet is current.',
              runbook_url: $._config.runbookUrl % 'iotexporternofirstcycle',
            },
          },
          {
            alert: 'IoTExporterConfigReloadFailed',
            expr: 'iot_exporter_config_last_reload_successful{%(iotSelector)s} == 0' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT exporter config reload failed',
              description: 'The last config reload of {{ $labels.instance }} (job {{ $labels.job }}) failed; it keeps running with the previous config. Its log says why.',
              runbook_url: $._config.runbookUrl % 'iotexporterconfigreloadfailed',
            },
          },
          {
            alert: 'IoTExporterDown',
            expr: 'up{%(upSelector)s} == 0' % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IoT connectivity exporter {{ $labels.instance }} is down',
              description: 'Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes: no IoT connectivity data and no IoT alerts from it.',
              runbook_url: $._config.runbookUrl % 'iotexporterdown',
            },
          },
          {
            alert: 'IoTExporterAbsent',
            expr: 'absent(up{%(upSelector)s})' % $._config,
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No IoT connectivity exporter target is known to Prometheus',
              description: 'No scrape target with a job matching ".*iot-connectivity-exporter.*" has existed for 15 minutes: service discovery lost the exporter, or the job is named differently (adapt the selector in this rule).',
              runbook_url: $._config.runbookUrl % 'iotexporterabsent',
            },
          },
          // Nine events in ten reach the fleet within a minute when the queue is
          // healthy (the lag is seconds); a minute is backlog, not jitter.
          {
            alert: 'IoTExporterEventLagHigh',
            expr: |||
              histogram_quantile(0.9,
                sum by (job, instance, le) (rate(iot_exporter_events_lag_seconds_bucket{%(iotSelector)s}[5m]))
              ) > 60
            ||| % $._config,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT lifecycle events reach {{ $labels.instance }} late',
              description: 'Nine in ten lifecycle events applied by {{ $labels.instance }} (job {{ $labels.job }}) in the last 5 minutes were over a minute old: the consumers fall behind the queue.',
              runbook_url: $._config.runbookUrl % 'iotexportereventlaghigh',
            },
          },
          // Either messages wait and none are received, or polling saw changes no
          // event showed (the topic rule, the queue or its retention lost them).
          {
            alert: 'IoTExporterEventQueueStalled',
            expr: |||
              (
                  sum by (job, instance) (iot_exporter_events_queue_messages{%(iotSelector)s, state="visible"}) > 0
                and on (job, instance)
                  sum by (job, instance) (rate(iot_exporter_events_received_total{%(iotSelector)s}[10m])) == 0
              )
              or
                sum by (job, instance) (increase(iot_exporter_events_missed_total{%(iotSelector)s}[30m])) > 0
            ||| % $._config,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IoT lifecycle events stopped flowing to {{ $labels.instance }}',
              description: '{{ $labels.instance }} (job {{ $labels.job }}) receives no lifecycle events while messages wait on its queue, or polling saw connectivity changes that no event showed: disconnect counts are no longer exact.',
              runbook_url: $._config.runbookUrl % 'iotexportereventqueuestalled',
            },
          },
        ],
      },
    ],
  },
}
