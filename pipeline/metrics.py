"""Every Prometheus series the product exposes, defined once.

Conventions: ``lifecycle_`` prefix, ``_total`` counters, base units (seconds),
bounded label sets only (sources, vendors, stages, teams, SLA ids, reasons):
never an account id, event id or email as a label.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # the *_created series double the scrape size and no dashboard uses them

REGISTRY = CollectorRegistry(auto_describe=True)

STAGE_SECONDS_BUCKETS = (3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
                         60 * 86400, 90 * 86400, 180 * 86400, 365 * 86400)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS_INGESTED = Counter(
    "lifecycle_events_ingested", "Raw records read by the normalize step, by source and outcome",
    ["source", "outcome"], registry=REGISTRY)
CANONICAL_EVENTS = Counter(
    "lifecycle_canonical_events", "Canonical events produced by parsing, by kind", ["kind"], registry=REGISTRY)
IGNORED = Counter(
    "lifecycle_ignored", "Well-formed records with no lifecycle meaning, by vendor and type (not dead-lettered)",
    ["vendor", "type"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "lifecycle_dead_letters", "Records sent to the dead-letter topic, by step and reason",
    ["stage", "reason"], registry=REGISTRY)
ENGINE_OUTCOMES = Counter(
    "lifecycle_engine_outcomes", "What the stage engine did with each resolved event", ["outcome"], registry=REGISTRY)
TRANSITIONS = Counter(
    "lifecycle_stage_transitions", "Stage transitions emitted, by from/to stage",
    ["from_stage", "to_stage"], registry=REGISTRY)
HANDOFFS = Counter(
    "lifecycle_handoffs", "Handoff records emitted, by teams and status",
    ["from_team", "to_team", "status"], registry=REGISTRY)
SLA_BREACHES = Counter(
    "lifecycle_sla_breaches", "SLA breach records emitted, by SLA, severity and status",
    ["sla", "severity", "status"], registry=REGISTRY)
TIME_IN_STAGE = Histogram(
    "lifecycle_time_in_stage_seconds", "Time an account spent in a stage before leaving it (event time)",
    ["stage"], buckets=STAGE_SECONDS_BUCKETS, registry=REGISTRY)
PROCESSING_LATENCY = Histogram(
    "lifecycle_processing_latency_seconds", "Wall-clock time from connector ingest to transition emitted",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
SLA_DETECTION_DELAY = Histogram(
    "lifecycle_sla_detection_delay_seconds", "Wall-clock delay between an SLA deadline and its breach record (live clock)",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
IDENTITY_DECISIONS = Counter(
    "lifecycle_identity_decisions", "Identity resolution decisions, by rule", ["rule"], registry=REGISTRY)
MESSAGE_GAPS = Counter(
    "lifecycle_message_gaps", "Messages between the worker's steps not applied because an earlier one of their "
    "sender is missing (taken once the sender sends them again, in order; lasting, a write was lost), by hop "
    "(parsed, account) and sender", ["hop", "origin"], registry=REGISTRY)
PACE_WAIT = Counter(
    "lifecycle_ingest_pace_wait_seconds", "Seconds the ingest waited for account partitions to catch up before "
    "taking more input, by the partition it last waited for: one of this worker (local) or of another (remote)",
    ["where"], registry=REGISTRY)
CONSUMER_LAG = Gauge(
    "lifecycle_consumer_lag", "Messages between the highwater mark and the committed offset",
    ["topic", "partition"], registry=REGISTRY)
TABLE_KEYS = Gauge(
    "lifecycle_table_keys", "Keys held in a state table on this worker's active partitions", ["table"], registry=REGISTRY)
READ_MODEL_ROWS = Counter(
    "lifecycle_read_model_writes", "Records applied to the read model, by kind and outcome (inserted, duplicate)",
    ["kind", "outcome"], registry=REGISTRY)
CONNECTOR_RECORDS = Counter(
    "lifecycle_connector_records", "Records handled by a connector, by vendor, transport and outcome",
    ["vendor", "transport", "outcome"], registry=REGISTRY)
CONNECTOR_LAST_SUCCESS = Gauge(
    "lifecycle_connector_last_success_timestamp_seconds", "Unix time of a connector's last successful delivery",
    ["vendor", "transport"], registry=REGISTRY)
CONNECTOR_UP = Gauge(
    "lifecycle_connector_up", "1 while a connector is running and healthy", ["vendor", "transport"], registry=REGISTRY)
STEP_CPU = Counter(
    "lifecycle_step_cpu_seconds", "CPU seconds of the worker's own steps: parse (in its parse process, where it has "
    "one), merge (the event-time merge, identity, numbering) and accounts (engine, SLA, handoffs, merges), on the "
    "event loop's thread; the rest of the process's CPU is Kafka, Faust, asyncio and serialization",
    ["step"], registry=REGISTRY)
PARSE_PROCESS_RESTARTS = Counter(
    "lifecycle_parse_process_restarts", "Parse processes that died and were replaced (each message the dead one had "
    "was parsed on the event loop: nothing lost, the worker slower meanwhile)", registry=REGISTRY)
PARSE_PROCESSES = Gauge(
    "lifecycle_parse_processes", "A stream worker's parse processes: configured (LIFECYCLE_PARSE_PROCESSES) and "
    "running; running below configured for long means the worker parses on its event loop (slower, nothing lost)",
    ["state"], registry=REGISTRY)
COMPILED_MODULES = Gauge(
    "lifecycle_compiled_modules", "The per-record modules (pipeline/compiled.py) this process loads compiled and "
    "from source; any from source (no build, or a source changed since it) costs about a fifth more CPU per record",
    ["state"], registry=REGISTRY)
WORKER_READY = Gauge(
    "lifecycle_worker_ready", "1 once table recovery finished and the worker processes events", registry=REGISTRY)


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """A metric's labelled child, bound once: ``labels()`` costs more than the increment on
    the hot path. Labels here are bounded sets (never an account id), so the cache is too."""
    return metric.labels(*labels)


class StepCpu:
    """Adds the calling thread's CPU time between enter and exit to ``STEP_CPU{step}``: where the
    worker's CPU goes, step by step, beside the process total (``lifecycle bench`` prints both).
    Thread time, not process time: Faust's consumer runs in a thread of its own."""

    __slots__ = ("counter", "started")

    def __init__(self, step: str) -> None:
        self.counter = STEP_CPU.labels(step)
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.counter.inc(time.thread_time() - self.started)


def note_compiled() -> None:
    """``lifecycle_compiled_modules``: how this process loads the per-record modules (what
    ``compiled.enable`` decided at import; nothing is imported for it)."""
    from pipeline.compiled import MODULES, enabled

    built = len(enabled())
    COMPILED_MODULES.labels("compiled").set(built)
    COMPILED_MODULES.labels("source").set(len(MODULES) - built)
