"""Runtime settings, from environment variables (12-factor), with defaults for a laptop.

Every variable is listed in ``deploy/config/lifecycle.env.example``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str | None = None          # None: start the embedded broker
    app_id: str = "lifecycle"
    partitions: int = 4                           # of account-keyed topics (and their tables)
    journey_path: str | None = None               # None: the default journey shipped in the package
    data_dir: Path = Path("lifecycle-data")
    database_url: str | None = None               # None: SQLite file under data_dir
    sink_enabled: bool = True                     # run the read-model sink agent in this worker
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_enabled: bool = True
    # The SLA clock is each partition's event-time watermark. Once every input is read to
    # its end, the wall clock minus this lateness moves it on (checked every timer_interval).
    allowed_lateness_seconds: float = 0.0
    timer_interval: float = 1.0
    accept_test_mode: bool = False                # Stripe livemode=false events
    commit_interval: float = 1.0
    log_level: str = "warn"
    # The wall clock, pinned: when set (ISO 8601), the worker reads this instant instead of the
    # real time. For replays and the consistency verifier, where "now" must be an input too.
    frozen_now: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None,
            app_id=_env("LIFECYCLE_APP_ID", "lifecycle"),
            partitions=int(_env("LIFECYCLE_PARTITIONS", "4")),
            journey_path=os.environ.get("LIFECYCLE_JOURNEY", "").strip() or None,
            data_dir=Path(_env("LIFECYCLE_DATA_DIR", "lifecycle-data")),
            database_url=os.environ.get("LIFECYCLE_DATABASE_URL", "").strip() or None,
            sink_enabled=_env("LIFECYCLE_SINK_ENABLED", "1") != "0",
            web_host=_env("LIFECYCLE_WEB_HOST", "127.0.0.1"),
            web_port=int(_env("LIFECYCLE_WEB_PORT", "6066")),
            web_enabled=_env("LIFECYCLE_WEB_ENABLED", "1") != "0",
            allowed_lateness_seconds=float(_env("LIFECYCLE_ALLOWED_LATENESS_SECONDS", "0")),
            timer_interval=float(_env("LIFECYCLE_TIMER_INTERVAL", "1.0")),
            accept_test_mode=_env("LIFECYCLE_ACCEPT_TEST_MODE", "0") == "1",
            commit_interval=float(_env("LIFECYCLE_COMMIT_INTERVAL", "1.0")),
            log_level=_env("LIFECYCLE_LOG_LEVEL", "warn"),
            frozen_now=os.environ.get("LIFECYCLE_FROZEN_NOW", "").strip() or None,
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'readmodel.db'}"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {
            "LIFECYCLE_APP_ID": self.app_id,
            "LIFECYCLE_PARTITIONS": str(self.partitions),
            "LIFECYCLE_DATA_DIR": str(self.data_dir),
            "LIFECYCLE_SINK_ENABLED": "1" if self.sink_enabled else "0",
            "LIFECYCLE_WEB_HOST": self.web_host,
            "LIFECYCLE_WEB_PORT": str(self.web_port),
            "LIFECYCLE_WEB_ENABLED": "1" if self.web_enabled else "0",
            "LIFECYCLE_ALLOWED_LATENESS_SECONDS": str(self.allowed_lateness_seconds),
            "LIFECYCLE_TIMER_INTERVAL": str(self.timer_interval),
            "LIFECYCLE_ACCEPT_TEST_MODE": "1" if self.accept_test_mode else "0",
            "LIFECYCLE_COMMIT_INTERVAL": str(self.commit_interval),
            "LIFECYCLE_LOG_LEVEL": self.log_level,
        }
        if self.bootstrap_servers:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        if self.journey_path:
            env["LIFECYCLE_JOURNEY"] = self.journey_path
        if self.database_url:
            env["LIFECYCLE_DATABASE_URL"] = self.database_url
        if self.frozen_now:
            env["LIFECYCLE_FROZEN_NOW"] = self.frozen_now
        return env
