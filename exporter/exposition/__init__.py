"""What /metrics shows: the fleet's series rendered on change, and the exporter's own metrics."""
