"""AWS IoT's names every layer shares: what a thing name is, the polled operation, the index."""

from __future__ import annotations

import re

# AWS: a thing name is 1 to 128 of these characters. Thing group and thing type names
# follow the same rule. A name outside it cannot have come from AWS, and could break the
# exposition (a quote or a newline in a label value), so no such name is ever a target.
THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")

# The call the live poller makes once per thing. Its budget is poll.max_requests_per_second.
POLL_OPERATION = "GetThingConnectivityData"

# The rollup label whose values are the thing groups a discovery source lists
# (metrics.rollup_by); every other rollup label is a label of the thing's series.
THING_GROUP_LABEL = "thing_group"
# The value of every rollup label on the segment metrics.max_rollup_segments folds the rest
# into. AWS allows no parentheses in thing type, thing group or attribute values, and the
# config refuses it as a configured label's value, so no real segment can take it.
ROLLUP_OTHER = "(other)"

# The calls of the fleet aggregates, which only shard 0 makes (so its budget is not shared).
AGGREGATE_OPERATIONS = ("GetStatistics", "GetBucketsAggregation")

# The fleet index every SearchIndex, GetStatistics and GetBucketsAggregation call names.
INDEX_NAME = "AWS_Things"


def is_thing_name(name: object) -> bool:
    """Whether AWS could have issued `name` as a thing name."""
    return isinstance(name, str) and THING_NAME_RE.fullmatch(name) is not None
