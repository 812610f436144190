"""Shared test helpers: real Prometheus, Alertmanager and exporter processes on 127.0.0.1.

- `tests.support.promstack`: `Prometheus`, `Alertmanager`, `WebhookReceiver`,
  `ScrapeTarget`, `free_port`, `wait_until`.
- `tests.support.exporter_process`: `ExporterProcess`, `parse_logfmt`.
- `tests.support.harness`: the in-process exporter-against-simulator harness and
  exposition helpers (`parse_samples`, `value`, `series`).
- `tests.support.paths`: where the shipped files live (`REPO_ROOT`, alerts, dashboard, chart).
- `tests.support.stack`: `AWS_TEST_ENV`, `run_cli`, `write_exporter_config`, the fleet stack.

Every helper is a context manager that cleans up after itself (processes,
threads, temporary directories) even when the test fails, and every wait is a
bounded poll that raises `TimeoutError` with the process's log tail.
"""
