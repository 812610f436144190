"""aws-iot-connectivity-exporter: Prometheus metrics for the connectivity of AWS IoT things."""

__version__ = "0.1.0"
