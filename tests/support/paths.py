"""Where the shipped files live in the repository, for tests that read or check them."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where GitHub shows the repository; shipped files link to its docs under /blob/main/.
REPO_URL = "https://github.com/aws-iot-connectivity-exporter/aws-iot-connectivity-exporter"
MONITORING = REPO_ROOT / "monitoring"
ALERTS_FILE = MONITORING / "alerts.yaml"
ALERTS_TEST_FILE = MONITORING / "alerts_test.yaml"
# The 30-day recording rules, evaluated hourly (see its header).
ALERTS_LONG_TEST_FILE = MONITORING / "alerts_long_test.yaml"
DASHBOARD_FILE = MONITORING / "dashboard.json"
# The runbooks every alert's runbook_url points into.
ALERTS_DOC = REPO_ROOT / "docs" / "alerts.md"
CHART_DIR = REPO_ROOT / "helm" / "iot-connectivity-exporter"
CHART_FILES = CHART_DIR / "files"
