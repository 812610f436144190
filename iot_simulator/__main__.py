"""Entry point of ``python -m iot_simulator``."""

import sys

from iot_simulator.cli import main

sys.exit(main())
