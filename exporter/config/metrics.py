"""metrics: what /metrics shows."""

from exporter.config.fields import Boolean
from exporter.config.yamlfile import StrictSection


class MetricsSettings(StrictSection):
    """What /metrics shows."""

    per_thing: Boolean = True
