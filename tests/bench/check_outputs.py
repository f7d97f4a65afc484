"""Checks what one praxis-bench run wrote: every scenario ran at every load without errors and
against a ceiling measured in the same run; the Markdown table and the SVG plot show them."""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SCENARIOS = ["check", "check-cold", "batch-check", "introspect", "login", "list-users", "snapshot"]

out = Path(sys.argv[1])
report = json.loads((out / "bench.json").read_text())
machine = report["machine"]
assert machine["cores"] >= 1 and machine["cpu_model"], machine
assert len(machine["load_average_before"]) == 3, machine
assert report["data"]["users"] > 0, report["data"]

runs = report["runs"]
closed = sorted({r["concurrency"] for r in runs if r["mode"] == "closed"})
open_runs = [r for r in runs if r["mode"] == "open"]
assert closed and open_runs, "both closed- and open-loop runs"
groups = [[r for r in runs if r["mode"] == "closed" and r["concurrency"] == c] for c in closed]
# Open-loop runs at a share of each scenario's own peak have a rate per scenario: one group.
groups.append(open_runs)
for group in groups:
    ceilings = sorted(r["server"] for r in group if r["scenario"] == "ceiling")
    assert ceilings == ["authz", "directory", "identity"], ceilings
    for scenario in SCENARIOS:
        [run] = [r for r in group if r["scenario"] == scenario]
        assert run["requests"] > 0 and run["errors"] == 0, run
        latency = run["latency_us"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"] <= latency["max"], run
        assert run["vs_ceiling"]["throughput"] > 0, run
        if run["mode"] == "open":
            assert run["target_rate"] > 0, run
loads = len(groups)

table = (out / "bench.md").read_text()
rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| scenario")]
assert len(rows) == len(runs), (len(rows), len(runs))
for scenario in SCENARIOS:
    assert any(row.startswith(f"| {scenario} |") for row in rows), scenario

svg = ET.parse(out / "bench.svg").getroot()
assert svg.tag.endswith("svg"), svg.tag
lines = [e for e in svg.iter() if e.tag.endswith("polyline") or e.tag.endswith("path")]
texts = " ".join(e.text or "" for e in svg.iter() if e.tag.endswith("text"))
assert lines, "no series drawn"
for scenario in SCENARIOS:
    assert scenario in texts, f"{scenario} missing from the plot's legend"

print(f"{out.name}: {len(runs)} runs over {loads} loads, every scenario without errors; "
      f"bench.md has {len(rows)} rows; bench.svg draws {len(lines)} lines")
