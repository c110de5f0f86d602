"""deploy/config/lifecycle.env.example documents every variable the code reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# Imported before the environment is swapped, so only the settings lookups are recorded.
from connectors.signatures import SignatureConfig
from pipeline.readmodel.engine import resolve_url
from pipeline.settings import Settings
from tests.deploy.conftest import ENV_EXAMPLE

REQUIRED = {
    "KAFKA_BOOTSTRAP_SERVERS", "LIFECYCLE_DATABASE_URL", "LIFECYCLE_JOURNEY", "LIFECYCLE_WEB_PORT",
    "STRIPE_WEBHOOK_SECRET", "HUBSPOT_CLIENT_SECRET", "ZENDESK_WEBHOOK_SECRET", "SEGMENT_SHARED_SECRET",
    "SALESFORCE_SHARED_SECRET",
}


def documented_variables() -> set[str]:
    names = set()
    for n, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, _ = line.partition("=")
        assert sep and name.isupper() and " " not in name, f"{ENV_EXAMPLE.name}:{n}: not NAME=value: {line!r}"
        names.add(name)
    return names


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


@pytest.fixture
def recording_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingEnv]:
    env = RecordingEnv()
    monkeypatch.setattr("os.environ", env)
    yield env


def test_required_variables_are_documented() -> None:
    assert REQUIRED <= documented_variables()


def test_every_variable_the_code_reads_is_documented(recording_env: RecordingEnv) -> None:
    Settings.from_env()
    SignatureConfig.from_env()
    resolve_url()
    assert recording_env.asked, "the recording environment saw no lookups"
    missing = recording_env.asked - documented_variables()
    assert not missing, f"read by the code but not in {ENV_EXAMPLE.name}: {sorted(missing)}"
