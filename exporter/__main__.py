"""`python -m exporter`: the same entry point as the iot-connectivity-exporter script."""

from exporter.cli import main

raise SystemExit(main())
