// The Grafana dashboard: dashboards/iot-connectivity.json, with the uid, the title and the
// job variable's selector taken from _config.
{
  grafanaDashboards+:: {
    'iot-connectivity.json':
      local source = import 'dashboards/iot-connectivity.json';
      local jobs = 'label_values(iot_exporter_build_info{%s}, job)' % $._config.iotSelector;
      local scoped(variable) =
        if variable.name == 'job'
        then variable { definition: jobs, query+: { query: jobs } }
        else variable;
      source {
        uid: $._config.dashboardUid,
        title: $._config.dashboardTitle,
        templating+: { list: std.map(scoped, source.templating.list) },
      },
  },
}
