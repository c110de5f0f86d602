"""Runtime settings: one typed model of every environment variable (12-factor), with laptop defaults.

Every variable is defined here once, with its name, type, default and meaning; nothing else in
the project reads ``os.environ`` (``tests/deploy/test_env_example.py`` checks it).
``deploy/config/lifecycle.env.example`` lists exactly these variables (checked against the model),
and ``lifecycle config show`` prints the effective values with secrets masked.

``Settings(...)`` is exactly its arguments over the defaults; ``Settings.from_env()`` reads the
environment, and a bad value fails there with the variable's name and what is wrong
(:class:`ConfigError`), so a process stops at start rather than at first use.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.topics import Topics

PREFIX = "LIFECYCLE_"
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogLevel = Literal["debug", "info", "warn", "warning", "error", "critical"]

# Vendor credentials: which setting holds each vendor's webhook signing secret and API token.
WEBHOOK_SECRET_FIELDS: dict[str, str] = {
    "stripe": "stripe_webhook_secret", "hubspot": "hubspot_client_secret", "zendesk": "zendesk_webhook_secret",
    "segment": "segment_shared_secret", "salesforce": "salesforce_shared_secret",
}
API_TOKEN_FIELDS: dict[str, str] = {
    "stripe": "stripe_api_key", "hubspot": "hubspot_access_token", "salesforce": "salesforce_access_token",
    "zendesk": "zendesk_oauth_token", "segment": "segment_export_token",
}
# The REST API root read for enrichment, of each vendor whose descriptor has an ``enrichment``.
API_BASE_FIELDS: dict[str, str] = {
    "hubspot": "hubspot_api_base_url", "salesforce": "salesforce_instance_url", "zendesk": "zendesk_api_base_url",
}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and what is wrong."""


def _env(name: str) -> Any:
    """A field read from a variable outside the ``LIFECYCLE_`` prefix (Kafka's and the vendors' own)."""
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="forbid",
                                      populate_by_name=True, str_strip_whitespace=True)

    # --- Kafka ------------------------------------------------------------------------------------
    bootstrap_servers: str | None = Field(None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
                                          description="Brokers, comma-separated. Unset: the embedded broker.")
    security_protocol: SecurityProtocol = Field("PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL"),
                                                description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: SaslMechanism = Field("PLAIN", validation_alias=_env("KAFKA_SASL_MECHANISM"),
                                          description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols).")
    sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    sasl_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    ssl_ca_file: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CA_FILE"),
                                     description="PEM CA bundle that signed the brokers' certificates "
                                                 "(unset: the system's trust store).")
    ssl_cert_file: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CERT_FILE"),
                                       description="Client certificate (PEM) for mutual TLS.")
    ssl_key_file: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_KEY_FILE"),
                                      description="The client certificate's private key (PEM).")
    ssl_key_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SSL_KEY_PASSWORD"))
    ssl_check_hostname: bool = Field(True, validation_alias=_env("KAFKA_SSL_CHECK_HOSTNAME"),
                                     description="Verify that a broker's certificate names its host.")
    fetch_max_wait_ms: int = Field(
        50, ge=1, le=30_000,
        description="Longest a worker's fetch waits at the broker for new records. Apache Kafka answers as soon "
                    "as any arrive; the embedded broker (Tansu) holds every fetch this long, so it bounds each "
                    "hop's latency there (Faust's own 1,500 ms left a backfill idle half the time).")
    app_id: str = Field("lifecycle", description="Consumer group / Faust app id; workers with one id share work.")
    topic_namespace: str = Field("",
                                 description="Namespace of every topic name (e.g. 'staging' gives "
                                             "staging.lifecycle.raw.crm ...), so two deployments can share a "
                                             "cluster. Unless LIFECYCLE_APP_ID is set, the app id (consumer "
                                             "group, changelogs) follows: <namespace>.lifecycle. Empty: none.")
    partitions: int = Field(4, ge=1, description="Partitions of the raw and account-keyed topics (and their tables); "
                            "one parsed topic per raw partition.")

    # --- Journey and read model ---------------------------------------------------------------------
    journey_path: str | None = Field(None, validation_alias=_env(PREFIX + "JOURNEY"),
                                     description="Journey definition file. Unset: the shipped default.")
    data_dir: Path = Field(Path("lifecycle-data"), description="Worker state and the default SQLite read model.")
    database_url: str | None = Field(None, description="Read model URL. Unset: sqlite:///<data dir>/readmodel.db.")
    sink_enabled: bool = Field(True, description="Run the read-model sink agent in this worker (role all).")
    role: Literal["all", "stream", "sink"] = Field(
        "all", description="What this worker runs: all (stream + read-model sink), stream (ingest, accounts, "
                           "timers) or sink (the read-model sink alone, in its own group <app id>-readmodel, "
                           "so SQL never competes with the stream loop).")
    store: Literal["memory", "rocksdict"] = Field(
        "memory", description="Table store: memory (rebuilt from the changelogs at every start) or rocksdict "
                              "(RocksDB files under the data dir: a clean restart reads only the changelog tail).")

    # --- Web surface (/metrics, /healthz, /readyz, /api/reports/*) -------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    web_enabled: bool = True

    # --- SLA clock and processing ---------------------------------------------------------------
    # The SLA clock is each partition's event-time watermark. Once every input is read to
    # its end, the wall clock minus this lateness moves it on (checked every timer_interval).
    allowed_lateness_seconds: float = Field(0.0, ge=0)
    # An event dated beyond now + this skew is dead-lettered as future_event_time at parse: one
    # future date would otherwise move its partition's SLA clock ahead of the wall clock.
    future_skew_seconds: float = Field(3600.0, ge=0)
    timer_interval: float = Field(1.0, gt=0)
    parse_processes: int = Field(1, ge=0, description=(
        "Child processes of a stream worker that parse its raw messages (pipeline.parse_pool), so the "
        "parse runs on other cores than the merge and the accounts; 0 parses on the worker's event loop."))
    # Read by ``pipeline/__init__.py`` itself, before any module it concerns is imported; here so
    # that it is documented and validated with the rest.
    compiled: bool = Field(True, description=(
        "Load the per-record modules compiled by `lifecycle compile` (make install) "
        "where built and current; 0 imports their sources (the same behaviour, about a fifth more CPU)."))
    # The wall clock, pinned: when set (ISO 8601), the worker reads this instant instead of the
    # real time. For replays and the consistency verifier, where "now" must be an input too.
    frozen_now: str | None = Field(None, description="Pin the wall clock to this ISO 8601 instant.")
    accept_test_mode: bool = Field(False, description="Accept Stripe test-mode (livemode=false) events.")
    commit_interval: float = Field(1.0, gt=0)
    log_level: LogLevel = "warn"

    # --- Vendor credentials (connectors) ------------------------------------------------------------
    stripe_webhook_secret: SecretStr | None = Field(None, validation_alias=_env("STRIPE_WEBHOOK_SECRET"))
    hubspot_client_secret: SecretStr | None = Field(None, validation_alias=_env("HUBSPOT_CLIENT_SECRET"))
    zendesk_webhook_secret: SecretStr | None = Field(None, validation_alias=_env("ZENDESK_WEBHOOK_SECRET"))
    segment_shared_secret: SecretStr | None = Field(None, validation_alias=_env("SEGMENT_SHARED_SECRET"))
    salesforce_shared_secret: SecretStr | None = Field(None, validation_alias=_env("SALESFORCE_SHARED_SECRET"))
    stripe_api_key: SecretStr | None = Field(None, validation_alias=_env("STRIPE_API_KEY"))
    hubspot_access_token: SecretStr | None = Field(None, validation_alias=_env("HUBSPOT_ACCESS_TOKEN"))
    salesforce_access_token: SecretStr | None = Field(None, validation_alias=_env("SALESFORCE_ACCESS_TOKEN"))
    zendesk_oauth_token: SecretStr | None = Field(None, validation_alias=_env("ZENDESK_OAUTH_TOKEN"))
    segment_export_token: SecretStr | None = Field(None, validation_alias=_env("SEGMENT_EXPORT_TOKEN"))
    poll_password: SecretStr | None = Field(None, validation_alias=_env("POLL_PASSWORD"),
                                            description="Basic-auth password of `lifecycle connect poll --user`.")
    # Enrichment: the object behind a notification-only webhook, read from the vendor's API (with its token).
    hubspot_api_base_url: str | None = Field(None, validation_alias=_env("HUBSPOT_API_BASE_URL"),
                                             description="HubSpot API root, e.g. https://api.hubapi.com. "
                                                         "Unset: HubSpot notifications are not enriched.")
    salesforce_instance_url: str | None = Field(None, validation_alias=_env("SALESFORCE_INSTANCE_URL"),
                                                description="Salesforce instance, e.g. https://acme.my.salesforce.com.")
    zendesk_api_base_url: str | None = Field(None, validation_alias=_env("ZENDESK_API_BASE_URL"),
                                             description="Zendesk API root, e.g. https://acme.zendesk.com.")
    enrich_attempts: int = Field(6, ge=1, description="Reads of an object (429/5xx retried) before the "
                                                      "notification is dead-lettered enrichment_failed.")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` never reads the environment behind its caller's back; ``from_env`` does."""
        return (init_settings,)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the process environment gives; :class:`ConfigError` names a bad variable."""
        try:
            return cls(**EnvSettingsSource(cls)())
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None

    @classmethod
    def env_name(cls, field: str) -> str:
        alias = cls.model_fields[field].validation_alias
        return alias.choices[0] if isinstance(alias, AliasChoices) else PREFIX + field.upper()  # type: ignore[return-value]

    @classmethod
    def env_names(cls) -> list[str]:
        return [cls.env_name(f) for f in cls.model_fields]

    @classmethod
    def is_secret(cls, field: str) -> bool:
        return "SecretStr" in str(cls.model_fields[field].annotation)

    @field_validator("frozen_now")
    @classmethod
    def _iso_instant(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    @field_validator("topic_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return Topics(value).namespace  # ValueError says what a namespace may be

    @model_validator(mode="before")
    @classmethod
    def _app_id_follows_namespace(cls, data: Any) -> Any:
        """Two deployments need their own topics *and* their own consumer group and changelogs
        (named after the app id): a namespace without an explicit app id names the app too."""
        if isinstance(data, dict):
            namespace = data.get("topic_namespace") or data.get(PREFIX + "TOPIC_NAMESPACE")
            if namespace and not (data.get("app_id") or data.get(PREFIX + "APP_ID")):
                data = {**data, "app_id": f"{namespace}.lifecycle"}
        return data

    @model_validator(mode="after")
    def _security_complete(self) -> Settings:
        if self.security_protocol.startswith("SASL_") and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"{self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            path = getattr(self, name)
            if path is not None and self.security_protocol in ("SSL", "SASL_SSL") and not path.is_file():
                raise ValueError(f"{self.env_name(name)}: no such file: {path}")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'readmodel.db'}"

    @property
    def topics(self) -> Topics:
        """This deployment's topic names (``LIFECYCLE_TOPIC_NAMESPACE``)."""
        return Topics(self.topic_namespace)

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def webhook_secret(self, vendor: str) -> SecretStr | None:
        return getattr(self, WEBHOOK_SECRET_FIELDS[vendor]) if vendor in WEBHOOK_SECRET_FIELDS else None

    def api_token(self, vendor: str) -> SecretStr | None:
        return getattr(self, API_TOKEN_FIELDS[vendor]) if vendor in API_TOKEN_FIELDS else None

    def api_base_url(self, vendor: str) -> str | None:
        return getattr(self, API_BASE_FIELDS[vendor]) if vendor in API_BASE_FIELDS else None

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed, validated like any other."""
        return type(self)(**{**{f: getattr(self, f) for f in type(self).model_fields}, **changes})

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process (secrets included)."""
        return {self.env_name(f): _env_text(v) for f in type(self).model_fields
                if (v := getattr(self, f)) is not None}

    def describe(self) -> list[tuple[str, str]]:
        """(variable, effective value) for every setting, secrets masked: what ``config show`` prints."""
        out = []
        for f in type(self).model_fields:
            value = getattr(self, f)
            text = "" if value is None else ("********" if self.is_secret(f) else _env_text(value))
            out.append((self.env_name(f), text))
        return out


def topics_for(settings: Settings | None = None) -> Topics:
    """A deployment's topic names: those of ``settings``, or of the process environment (for code
    given only a bootstrap string, as ``pipeline.kafka_clients.client_kwargs`` does)."""
    return (settings if settings is not None else Settings.from_env()).topics


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def _explain(exc: ValidationError) -> str:
    """One line per problem, by variable name; the value is shown unless the setting is a secret."""
    by_key = {k: Settings.env_name(f) for f, info in Settings.model_fields.items()
              for k in (f, Settings.env_name(f))}
    lines = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else ""
        name = by_key.get(key, key)
        field = next((f for f in Settings.model_fields if Settings.env_name(f) == name), None)
        shown = "" if not field or Settings.is_secret(field) else f"={err.get('input')!r}"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}{shown}: {msg}" if name else msg)
    return "invalid settings: " + "; ".join(lines)
