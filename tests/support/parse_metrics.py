"""Parses reprod's /metrics with the Prometheus project's own parser (prometheus_client, OpenMetrics).

Reads the exposition on stdin; prints a JSON object of every sample, `name{label="value",...}` -> value.
A parse error raises: the exposition is not valid OpenMetrics text.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
