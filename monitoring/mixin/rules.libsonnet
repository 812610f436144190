{
  prometheusRules+:: {
    groups+: [
      // Availability. Per segment of metrics.rollup_by (without rollup_by: the fleet of each
      // job), the share of deployed things connected, sampled at each evaluation, averaged
      // over windows; per thing, from iot_thing_connected_seconds_total, exact to its bound.
      // Long windows average a shorter recorded series, evaluated less often, so they stay
      // cheap at 100,000 things (see docs/alerts.md#availability-and-its-objective).
      {
        name: 'iot-connectivity-availability',
        interval: '1m',
        rules: [
          {
            record: 'iot_segment:connected:ratio',
            expr: |||
              sum without (instance, pod, connected) (iot_things{%(iotSelector)s, connected="true"})
              /
              (
                  sum without (instance, pod, connected) (iot_things{%(iotSelector)s})
                - sum without (instance, pod) (iot_things_never_connected{%(iotSelector)s})
                > 0
              )
            ||| % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg5m',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[5m])' % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg30m',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[30m])' % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg1h',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[1h])' % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg2h',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[2h])' % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg6h',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[6h])' % $._config,
          },
        ],
      },
      {
        name: 'iot-connectivity-availability-days',
        interval: '5m',
        rules: [
          {
            record: 'iot_segment:availability:ratio_avg1d',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[1d])' % $._config,
          },
          {
            record: 'iot_segment:availability:ratio_avg3d',
            expr: 'avg_over_time(iot_segment:connected:ratio{%(iotSelector)s}[3d])' % $._config,
          },
          {
            record: 'iot_thing:availability:ratio_rate1h',
            expr: 'clamp_max(rate(iot_thing_connected_seconds_total{%(iotSelector)s}[1h]), 1)' % $._config,
          },
        ],
      },
      {
        name: 'iot-connectivity-availability-month',
        interval: '1h',
        rules: [
          {
            record: 'iot_segment:availability:ratio_avg30d',
            expr: 'avg_over_time(iot_segment:availability:ratio_avg1h{%(iotSelector)s}[30d])' % $._config,
          },
          {
            record: 'iot_thing:availability:ratio_rate1d',
            expr: 'avg_over_time(iot_thing:availability:ratio_rate1h{%(iotSelector)s}[1d])' % $._config,
          },
          {
            record: 'iot_thing:availability:ratio_rate30d',
            expr: 'avg_over_time(iot_thing:availability:ratio_rate1d{%(iotSelector)s}[30d])' % $._config,
          },
        ],
      },
    ],
  },
}
