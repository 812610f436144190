"""Sources: where the exporter learns which things to watch and how they are connected.

Every source is a `Source` (base.py): a job the scheduler runs every `interval`, one pass
at a time, that reports through `Updates` and never raises for AWS's failures.

- Target sources name things: the static list, thing groups, thing types, attribute
  filters and fleet-index queries. In live mode they list their things every
  discovery.interval through the registry (registry.py); in index mode they page the
  fleet index every poll.interval (index.py), which observes as it discovers.
- Observation sources report connectivity: the live poller (live.py), the index pager
  (index.py) and lifecycle events from SQS (events.py), which count disconnects exactly.
- The aggregates (aggregates.py) count the fleet through the index.

A new kind of source is a module here with a `Source` subclass, and a line in plan.py.
"""
