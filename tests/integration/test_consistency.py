"""The consistency verifier, short: the same seeded input run again, under kill -9 restarts, under
graceful SIGTERM restarts, and under a worker dying in a two-worker group (its partitions, the
single-partition identity state included, taken over by the survivor), must give exactly the reference
run's output (duplicates allowed, nothing lost, nothing extra, nothing different). The full run is
``make consistency`` (``lifecycle verify``: 300 accounts, 10 kills, every scenario).

The verifier starts an embedded broker per scenario (topic names are global, so scenarios cannot share
one), whatever broker the rest of the suite uses; its table and examples are printed (shown on failure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.drive.verify import VerifyConfig, run_verify, verdict

pytestmark = pytest.mark.integration


SCENARIOS = ("reference", "rerun", "kill9", "sigterm", "two-workers-one-dies")


@pytest.mark.timeout(1200)
def test_reruns_kills_restarts_and_a_dying_worker_give_the_reference_output(tmp_path: Path) -> None:
    config = VerifyConfig(accounts=60, seed=7, kills=3, sigterms=2, scenarios=SCENARIOS,
                          run_dir=tmp_path / "verify", keep=True)
    result = run_verify(config, Settings(data_dir=tmp_path), echo=print)

    # not vacuous: the reference did real work in every stream that matters
    assert tuple(s.name for s in result.scenarios) == SCENARIOS
    counts = result.reference_counts
    assert counts["stage-transitions"] >= 150, counts   # 229 when written
    assert counts["handoffs"] >= 150, counts            # 250
    assert counts["sla-breaches"] >= 50, counts         # 135
    assert counts["identity:merges"] >= 50, counts      # 107
    assert counts["accounts (final)"] >= 100, counts    # 167
    assert result.processing_seconds > 0

    assert all(s.error is None for s in result.scenarios), [s.error for s in result.scenarios]
    inconsistent = {f"{s.name}/{stream}": (len(c.lost), len(c.spurious), len(c.changed))
                    for s in result.scenarios for stream, c in s.streams.items() if not c.ok}
    assert not inconsistent, f"{verdict(result)}; (lost, spurious, changed): {inconsistent}"
