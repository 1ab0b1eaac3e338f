"""Every claim's threshold sits outside the spread of what it measured in the recorded test runs
(tests/claim_spreads.json, merged from CI-exact runs' results/claims-log.jsonl by
``python -m helpers.report.claims``). A claim with fewer than three recorded runs is reported, not judged."""

import json
from pathlib import Path

import pytest

from helpers.report.claims import inside_spread

SPREADS = Path(__file__).with_name("claim_spreads.json")
MIN_RUNS = 3
ENTRIES = json.loads(SPREADS.read_text()) if SPREADS.exists() else {}


@pytest.mark.parametrize("key", sorted(ENTRIES) or ["none recorded"])
def test_threshold_is_outside_the_recorded_spread(key):
    if key not in ENTRIES:
        pytest.skip("no test runs recorded yet in tests/claim_spreads.json")
    entry = ENTRIES[key]
    if len(entry["runs"]) < MIN_RUNS:
        pytest.skip(f"{key}: {len(entry['runs'])} recorded runs, {MIN_RUNS} needed to judge its threshold")
    runs = [(r["min"], r["measured"], r["max"]) for r in entry["runs"]]
    assert not inside_spread(entry), (f"{key}: {entry['op']} {entry['threshold']} lies inside what its runs "
                                      f"measured (min, median, max per run): {runs}")
