"""Shared by the what-if tests: journeys derived from the shipped one, sample files."""

from __future__ import annotations

from pathlib import Path

from pipeline.journey import DEFAULT_JOURNEY
from pipeline.sample import SampleConfig, generate, write_jsonl

SHIPPED = Path(__file__).resolve().parents[2] / "pipeline" / "journeys" / DEFAULT_JOURNEY
KICKOFF_5 = "    within: 5 business days\n    segments: [enterprise, mid_market]"


def kickoff_journey(tmp: Path, business_days: int) -> Path:
    """The shipped journey with the customer-kickoff SLA at ``business_days``."""
    text = SHIPPED.read_text()
    assert text.count(KICKOFF_5) == 1, "the shipped journey's kickoff SLA moved; update the test helper"
    path = tmp / f"kickoff-{business_days}bd.yaml"
    path.write_text(text.replace(KICKOFF_5, KICKOFF_5.replace("5 business days", f"{business_days} business days")))
    return path


def sample_file(tmp: Path, accounts: int, seed: int = 7) -> Path:
    path = tmp / f"sample-{accounts}-{seed}.jsonl"
    write_jsonl(generate(SampleConfig(accounts=accounts, seed=seed)), path)
    return path
