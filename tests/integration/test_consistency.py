"""The consistency verifier, short: the same seeded input run again, and under a worker dying in a
two-worker group (its partitions, the single-partition identity state included, taken over by the
survivor), must give exactly the reference run's output (duplicates allowed, nothing lost, nothing extra,
nothing different). The full run is ``make consistency`` (``lifecycle verify``).

The kill -9 loop is not in this short version yet: its outputs matched the reference when it finished,
but the ingest step sometimes stops after a restart (issue 8 stays open until it is found).

The verifier starts an embedded broker per scenario (topic names are global, so scenarios cannot share
one), whatever broker the rest of the suite uses; its table and examples are printed (shown on failure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.drive.verify import VerifyConfig, run_verify, verdict

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_a_rerun_and_a_dying_worker_give_the_reference_output(tmp_path: Path) -> None:
    config = VerifyConfig(accounts=60, seed=7, scenarios=("reference", "rerun", "two-workers-one-dies"),
                          run_dir=tmp_path / "verify", keep=True)
    result = run_verify(config, Settings(data_dir=tmp_path), echo=print)

    # not vacuous: the reference did real work in every stream that matters
    assert [s.name for s in result.scenarios] == ["reference", "rerun", "two-workers-one-dies"]
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
