"""``lifecycle verify``: does the pipeline give the same output when things go wrong?

Modelled on Kafka's ``streams_eos_test`` (kill -9 loops, then an independent
verifier reads the outputs) and Faust's ``tests/consistency``. One seeded input
is preloaded, byte for byte, before any worker starts; it is then processed
under several *scenarios* (a clean run, a rerun, kill -9 loops, graceful
restarts, a worker dying in a group, a worker joining, a fresh app id), and
every output stream plus the final account states is compared with the clean
reference run, record id by record id.

* Each scenario gets its own embedded broker (``KAFKA_BOOTSTRAP_SERVERS`` is
  ignored here), with the base settings' topic namespace and the scenario's app id.
  A topic namespace per scenario (``LIFECYCLE_TOPIC_NAMESPACE``) would separate
  scenarios on one broker, but a dead letter's id derives from its raw topic's name
  (``DeadLetter.build``), so dead letters of two namespaces could not be compared by
  id; and a broker per scenario keeps one scenario's faults (dead members, a wedged
  group) out of the next. Starting an embedded broker takes milliseconds.
* "Now" is an input too: every worker of every scenario runs with the same
  ``frozen_now``. Only processing-time fields (``emitted_at``, ``failed_at``,
  ``ingested_at``, at any depth) are ignored; everything else must be equal.
* At-least-once delivery allows an id to appear twice with identical content
  (reported as ``dup``); an id missing, extra, or carrying other content is a
  failure (``lost``, ``spurious``, ``changed``).

The comparison (``compare``) is pure and unit-tested; the rest drives real
worker processes through ``pipeline.drive.runner``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer

from pipeline.broker import EmbeddedBroker, free_port
from pipeline.drive.runner import WorkerProcess, internal_topics, produce_raw, start_together, wait_caught_up
from pipeline.kafka_clients import client_kwargs
from pipeline.topic_reads import read_topic, table_snapshot, topics_end_offsets
from pipeline.runtime import create_topics
from pipeline.settings import Settings
from schemas.events import RawRecord
from schemas.raw_batch import unpack
from schemas.topics import Topics

Json = Any
Keyed = tuple[str, Json]          # (record id, decoded value)
Echo = Callable[[str], None]

PROCESSING_TIME_FIELDS = frozenset({"emitted_at", "failed_at", "ingested_at"})
APP_ID = "lifecycle-verify"
READ_TIMEOUT = 120.0              # generous: a short read would show up as LOST
ACCOUNTS = "accounts (final)"


class VerifyError(RuntimeError):
    """The verification itself could not be carried out (not a consistency failure)."""


# ---- the comparison (pure) --------------------------------------------------------------------------------
def strip_processing_time(value: Json) -> Json:
    """The value without the fields that record *when* it was processed, at any depth."""
    if isinstance(value, dict):
        return {k: strip_processing_time(v) for k, v in value.items() if k not in PROCESSING_TIME_FIELDS}
    if isinstance(value, list):
        return [strip_processing_time(v) for v in value]
    return value


def _canonical(value: Json) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _short(value: Json, width: int = 80) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def field_diff(a: Json, b: Json, limit: int = 6) -> list[str]:
    """Where two values differ, as ``path: a != b`` lines (the first ``limit``): enough to debug from."""
    out: list[str] = []
    _diff(a, b, "", out, limit)
    return out[:limit]


def _diff(a: Json, b: Json, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{sub}: (absent) != {_short(b[k])}")
            elif k not in b:
                out.append(f"{sub}: {_short(a[k])} != (absent)")
            else:
                _diff(a[k], b[k], sub, out, limit)
            if len(out) >= limit:
                return
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path or '(root)'}: {len(a)} items != {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out, limit)
    elif type(a) is not type(b) or a != b:
        out.append(f"{path or '(root)'}: {_short(a)} != {_short(b)}")


@dataclass
class _Side:
    """One side's records grouped by id: each id's distinct contents (canonical form → value) and record count."""

    contents: dict[str, dict[bytes, Json]] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, keyed: Iterable[Keyed]) -> _Side:
        side = cls()
        for rid, value in keyed:
            stripped = strip_processing_time(value)
            side.contents.setdefault(rid, {}).setdefault(_canonical(stripped), stripped)
            side.records[rid] = side.records.get(rid, 0) + 1
        return side


@dataclass
class Comparison:
    """One stream of one scenario against the reference. Counts are of distinct ids, except ``duplicates``
    (extra records repeating an id with identical content: allowed under at-least-once)."""

    ref: int
    got: int
    ref_records: int
    got_records: int
    lost: list[str]
    spurious: list[str]
    changed: list[str]
    duplicates: int
    examples: dict[str, list[dict[str, Any]]]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.spurious or self.changed)


def compare(reference: Iterable[Keyed], scenario: Iterable[Keyed], examples: int = 3) -> Comparison:
    """LOST (id only in the reference), SPURIOUS (only in the scenario), CHANGED (same id, other content; or
    one id with two contents in the scenario), DUPLICATES (an id repeated with identical content)."""
    ref, got = _Side.of(reference), _Side.of(scenario)
    lost = sorted(ref.contents.keys() - got.contents.keys())
    spurious = sorted(got.contents.keys() - ref.contents.keys())
    changed = sorted(rid for rid in ref.contents.keys() & got.contents.keys()
                     if got.contents[rid].keys() != ref.contents[rid].keys() or len(got.contents[rid]) > 1)
    dup_ids = sorted(rid for rid, n in got.records.items() if n > len(got.contents[rid]))
    return Comparison(
        ref=len(ref.contents), got=len(got.contents),
        ref_records=sum(ref.records.values()), got_records=sum(got.records.values()),
        lost=lost, spurious=spurious, changed=changed,
        duplicates=sum(got.records[rid] - len(got.contents[rid]) for rid in dup_ids),
        examples={
            "lost": [{"id": rid, "reference": _short(_first(ref.contents[rid]), 160)} for rid in lost[:examples]],
            "spurious": [{"id": rid, "got": _short(_first(got.contents[rid]), 160)} for rid in spurious[:examples]],
            "changed": [{"id": rid, "diff": field_diff(*_changed_pair(ref.contents[rid], got.contents[rid]))}
                        for rid in changed[:examples]],
            "duplicates": [{"id": rid, "records": got.records[rid]} for rid in dup_ids[:examples]],
        },
    )


def _first(contents: dict[bytes, Json]) -> Json:
    return next(iter(contents.values()))


def _changed_pair(ref: dict[bytes, Json], got: dict[bytes, Json]) -> tuple[Json, Json]:
    """The two contents worth diffing: a reference content the scenario lacks (or the reference's), against a
    scenario content the reference lacks (or the scenario's second one)."""
    missing = [v for k, v in ref.items() if k not in got]
    extra = [v for k, v in got.items() if k not in ref]
    got_values = list(got.values())
    a = missing[0] if missing else _first(ref)
    b = extra[0] if extra else got_values[1 if len(got_values) > 1 else 0]
    return a, b


# ---- what is compared ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """One compared stream: the topic (a ``Topics`` attribute, so any namespace), which of its records,
    and their id."""

    name: str
    topic: str
    key: Callable[[dict[str, Any]], str]
    select: Callable[[Json], bool] = lambda value: True


def _is_merge(value: Json) -> bool:
    return isinstance(value, dict) and value.get("type") == "account_merged"


VIEWS: tuple[View, ...] = (
    View("stage-transitions", "stage_transitions", lambda v: v["transition_id"]),
    View("handoffs", "handoffs", lambda v: f"{v['handoff_id']}#v{v['version']}"),
    View("sla-breaches", "sla_breaches", lambda v: v["record_id"]),
    View("dead-letter", "dead_letter", lambda v: v["dead_letter_id"]),
    View("identity:merges", "identity", lambda v: v["merge_id"], _is_merge),
    # everything else on the identity topic, so nothing read goes uncompared
    View("identity:decisions", "identity", lambda v: v["decision_id"], lambda v: not _is_merge(v)),
)
STREAMS: tuple[str, ...] = (*(v.name for v in VIEWS), ACCOUNTS)


def decode(value: bytes | None) -> Json:
    """A topic value as JSON; what is not JSON is kept (as hex) so it still counts."""
    if value is None:
        return {"_tombstone": True}
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"_unparseable": value.hex()}


def record_id(view: View, value: Json) -> str:
    """The view's id for a record; a record without one gets a content hash (and so shows as LOST/SPURIOUS)."""
    try:
        return view.key(value)
    except (KeyError, TypeError):
        return "no-id:" + hashlib.blake2b(_canonical(value), digest_size=8).hexdigest()


def read_complete(bootstrap: str, topic: str) -> list[Any]:
    """Everything on a topic, or an error: a silently short read would be reported as LOST records."""
    ends = topics_end_offsets(bootstrap, [topic])
    messages = read_topic(bootstrap, topic, timeout=READ_TIMEOUT)
    reached: dict[int, int] = {}
    for m in messages:
        reached[m.partition] = max(reached.get(m.partition, 0), m.offset + 1)
    short = [f"p{tp.partition} {reached.get(tp.partition, 0)}/{end}" for tp, end in ends.items()
             if reached.get(tp.partition, 0) < end]
    if short:
        raise VerifyError(f"{topic}: read stopped short of the end ({', '.join(short)})")
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def collect(bootstrap: str, app_id: str, topics: Topics) -> dict[str, list[Keyed]]:
    """Every compared stream of a finished scenario, as (id, value) pairs."""
    by_topic: dict[str, list[Json]] = {}
    out: dict[str, list[Keyed]] = {}
    for view in VIEWS:
        topic = getattr(topics, view.topic)
        if topic not in by_topic:
            by_topic[topic] = [decode(m.value) for m in read_complete(bootstrap, topic)]
        out[view.name] = [(record_id(view, v), v) for v in by_topic[topic] if view.select(v)]
    states = table_snapshot(bootstrap, app_id, "accounts", timeout=READ_TIMEOUT)
    out[ACCOUNTS] = [(key, decode(value)) for key, value in sorted(states.items())]
    return out


def input_fingerprint(bootstrap: str, expected: int, topics: Topics) -> str:
    """A digest of the raw topics as the broker holds them (partition, offset, key, value): equal across
    scenarios means every scenario processed byte-identical input, batched alike, in the same order."""
    digest = hashlib.sha256()
    n = 0
    for topic in sorted(topics.raw.values()):
        for m in read_complete(bootstrap, topic):
            for part in (f"{m.topic}/{m.partition}/{m.offset}".encode(), m.key or b"", m.value or b""):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
            n += len(unpack(m.value or b""))
    if n != expected:
        raise VerifyError(f"preloaded {expected} raw records but the raw topics' batches hold {n}")
    return digest.hexdigest()[:16]


# ---- configuration and results ------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyConfig:
    accounts: int = 300
    seed: int = 7
    kills: int = 10
    sigterms: int = 3
    scenarios: tuple[str, ...] = ()            # empty: all
    settle: float = 5.0                        # after catching up, for the end-of-input clock ticks to fire
    now: str | None = None                     # the pinned wall clock (ISO 8601); None: now, to the second
    run_dir: Path | None = None                # None: <data_dir>/verify/<timestamp>
    keep: bool = False
    partitions: int = 4
    timer_interval: float = 0.5                # as the demo: end-of-input ticks come soon
    commit_interval: float = 0.5
    timeout: float = 300.0                     # for any one wait (catching up, quiet outputs)
    ready_timeout: float = 180.0               # a restart after kill -9 waits out the dead member's session


@dataclass
class ScenarioResult:
    name: str
    app_id: str
    seconds: float = 0.0
    fingerprint: str | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    streams: dict[str, Comparison] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.streams.values())


@dataclass
class VerifyResult:
    config: VerifyConfig
    now: str
    input_records: int
    run_dir: str
    processing_seconds: float = 0.0            # the reference's, from ready to caught up: where faults land
    scenarios: list[ScenarioResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.scenarios) and all(s.ok for s in self.scenarios)

    @property
    def reference_counts(self) -> dict[str, int]:
        """Distinct ids per stream in the reference: a verdict over nothing proves nothing."""
        return {name: c.ref for name, c in self.scenarios[0].streams.items()} if self.scenarios else {}

    def to_json(self) -> bytes:
        return orjson.dumps({"ok": self.ok, "verdict": verdict(self), **asdict(self)}, default=str,
                            option=orjson.OPT_INDENT_2)


# ---- running scenarios -------------------------------------------------------------------------------
class ScenarioRun:
    """One scenario's workers and timeline, on its own broker: the verbs scenarios are written in."""

    def __init__(self, name: str, settings: Settings, directory: Path, config: VerifyConfig,
                 processing: float, echo: Echo) -> None:
        self.name = name
        self.settings = settings
        self.dir = directory
        self.config = config
        self.processing = processing
        self.echo = echo
        self.rng = random.Random(f"{config.seed}:{name}")   # fault moments: seeded, per scenario
        self.workers: dict[int, WorkerProcess] = {}
        self.incarnations: dict[int, int] = {}
        self.timeline: list[tuple[float, str]] = []
        self.measured: float | None = None
        self._t0 = time.monotonic()

    @property
    def bootstrap(self) -> str:
        assert self.settings.bootstrap_servers
        return self.settings.bootstrap_servers

    def note(self, what: str) -> None:
        t = round(time.monotonic() - self._t0, 1)
        self.timeline.append((t, what))
        self.echo(f"    {t:6.1f}s  {what}")

    def start(self, *slots: int) -> None:
        """Start workers together (a group forms as in a deployment); each has its own data dir and port."""
        start_together([self._process(slot) for slot in slots])
        self.note("ready: " + ", ".join(f"w{s}" for s in slots))
        if len(self.workers) > 1:
            for slot, worker in sorted(self.workers.items()):
                try:
                    self.note(f"w{slot} owns {worker.owned_inputs()}")
                except OSError as exc:  # the timeline is for the reader; the verdict does not depend on it
                    self.note(f"w{slot}: /assignment unanswered ({exc})")

    def _process(self, slot: int) -> WorkerProcess:
        n = self.incarnations[slot] = self.incarnations.get(slot, -1) + 1
        settings = self.settings.with_(data_dir=self.dir / f"w{slot}", web_port=free_port())
        worker = self.workers[slot] = WorkerProcess(settings, self.dir / f"w{slot}.{n}.log",
                                                    ready_timeout=self.config.ready_timeout)
        return worker

    def kill(self, slot: int) -> None:
        self.workers.pop(slot).kill()
        self.note(f"kill -9 w{slot}")

    def stop(self, slot: int) -> None:
        code = self.workers.pop(slot).stop()
        self.note(f"SIGTERM w{slot} (exit {code})")

    def wait_random(self) -> None:
        """Sleep to a uniformly random moment within the reference's processing time."""
        time.sleep(self.rng.uniform(0, self.processing))

    def caught_up(self, settle: float = 1.5) -> float:
        """Wait for the group to commit everything its agents consume, failing fast if a worker died."""
        start = time.monotonic()
        while True:
            try:
                wait_caught_up(self.bootstrap, self.settings.app_id, internal_topics(self.settings), timeout=10.0,
                              settle=settle)
                return time.monotonic() - start
            except TimeoutError as exc:
                dead = [f"w{s}" for s, w in self.workers.items() if w.proc is None or w.proc.poll() is not None]
                if dead or time.monotonic() - start > self.config.timeout:
                    raise VerifyError(f"{exc}; exited: {', '.join(dead) or '-'} (logs in {self.dir})") from exc

    def measure_processing(self) -> None:
        """Time from ready to caught up: the window faults are placed in."""
        start, settle = time.monotonic(), 1.5
        self.caught_up(settle)
        self.measured = max(0.5, time.monotonic() - start - settle)
        self.note(f"caught up: processing took {self.measured:.1f}s")

    def finish(self) -> None:
        """Finished: the group committed everything its agents consume; then, after ``settle`` for the
        end-of-input clock ticks (SLA deadlines), caught up again with no topic growing meanwhile."""
        self.caught_up()
        quiet = max(1.5, 4 * self.settings.timer_interval)
        deadline = time.monotonic() + self.config.timeout
        growing: set[str] = set()
        while time.monotonic() < deadline:
            time.sleep(self.config.settle)
            watched = _all_topics(self.bootstrap)
            before = topics_end_offsets(self.bootstrap, watched)
            self.caught_up(quiet)
            after = topics_end_offsets(self.bootstrap, watched)
            growing = {tp.topic for tp, end in after.items() if before.get(tp) != end}
            if not growing:
                self.note("finished: caught up and quiet")
                return
        raise VerifyError(f"topics still growing after {self.config.timeout}s: {', '.join(sorted(growing))}")

    def close(self) -> None:
        slots = list(self.workers)
        for slot in slots:
            self.workers.pop(slot).stop()
        if slots:
            self.note("stopped: " + ", ".join(f"w{s}" for s in slots))


def _all_topics(bootstrap: str) -> list[str]:
    """Every topic on the scenario's broker (its own): outputs, internal topics and changelogs."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_kwargs())
    try:
        return sorted(consumer.topics())
    finally:
        consumer.close()


# ---- the scenarios ------------------------------------------------------------------------------------
def play_reference(run: ScenarioRun) -> None:
    """One worker, no faults."""
    run.start(0)
    run.measure_processing()
    run.finish()


def _restart_loop(run: ScenarioRun, times: int, end: Callable[[int], None]) -> None:
    for _ in range(times):
        run.start(0)
        run.wait_random()
        end(0)
    run.start(0)
    run.finish()


def play_kill9(run: ScenarioRun) -> None:
    """One worker, SIGKILLed at random moments and restarted: no commit, no flush, replay from the last commit."""
    _restart_loop(run, run.config.kills, run.kill)


def play_sigterm(run: ScenarioRun) -> None:
    """One worker, stopped gracefully at random moments and restarted."""
    _restart_loop(run, run.config.sigterms, run.stop)


def play_two_workers_one_dies(run: ScenarioRun) -> None:
    """Two workers in one group; one is SIGKILLed for good; the survivor takes over its partitions."""
    run.start(0, 1)
    run.wait_random()
    run.kill(run.rng.choice((0, 1)))
    run.finish()


def play_third_joins(run: ScenarioRun) -> None:
    """Two workers; a third joins mid-stream (a rebalance moves partitions and their tables)."""
    run.start(0, 1)
    run.wait_random()
    run.start(2)
    run.finish()


@dataclass(frozen=True)
class Scenario:
    name: str
    play: Callable[[ScenarioRun], None]
    app_id: str = APP_ID


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("reference", play_reference),
    Scenario("rerun", play_reference),
    Scenario("kill9", play_kill9),
    Scenario("sigterm", play_sigterm),
    Scenario("two-workers-one-dies", play_two_workers_one_dies),
    Scenario("third-joins", play_third_joins),
    Scenario("fresh-app", play_reference, app_id=f"{APP_ID}-fresh"),  # nothing may depend on the app id
)}


def select_scenarios(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Scenario names from a comma list ('all' or empty: every one); the reference always runs first."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text or ()) if n.strip()]
    if not names or names == ["all"]:
        return tuple(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return ("reference", *dict.fromkeys(n for n in names if n != "reference"))


# ---- the verifier -------------------------------------------------------------------------------------
def sample_records(config: VerifyConfig) -> list[RawRecord]:
    from pipeline.sample import SampleConfig, generate

    return generate(SampleConfig(accounts=config.accounts, seed=config.seed))


@contextlib.contextmanager
def _quiet_kafka_clients() -> Iterator[None]:
    """kafka-python logs each closed client's cancelled metadata refresh as an ERROR, and the verifier opens
    hundreds of short-lived clients (lag and offset polls): keep them out of the report unless asked (-v)."""
    logger = logging.getLogger("kafka")
    level = logger.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_verify(config: VerifyConfig, base: Settings | None = None, echo: Echo = print) -> VerifyResult:
    """Run the reference and the chosen scenarios, compare, print the table and the verdict."""
    with _quiet_kafka_clients():
        return _verify(config, base or Settings(), echo)


def _verify(config: VerifyConfig, base: Settings, echo: Echo) -> VerifyResult:
    names = select_scenarios(config.scenarios)
    now = config.now or datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    run_dir = config.run_dir or base.data_dir / "verify" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    records = sample_records(config)
    settings = base.with_(partitions=config.partitions, sink_enabled=False, web_enabled=True, frozen_now=now,
                          timer_interval=config.timer_interval, commit_interval=config.commit_interval)
    result = VerifyResult(config=config, now=now, input_records=len(records), run_dir=str(run_dir))
    echo(f"verify: {len(records)} raw records ({config.accounts} accounts, seed {config.seed}), now={now}, "
         f"scenarios: {', '.join(names)}; run dir {run_dir}")
    if base.bootstrap_servers:
        echo("note: KAFKA_BOOTSTRAP_SERVERS is ignored: every scenario needs a broker of its own")
    reference: dict[str, list[Keyed]] = {}
    for name in names:
        scenario = SCENARIOS[name]
        echo(f"  {name} ...")
        outcome = ScenarioResult(name=name, app_id=scenario.app_id)
        result.scenarios.append(outcome)
        try:
            outputs, run = _run_scenario(scenario, settings, run_dir / name, config, records,
                                         result.processing_seconds, echo, outcome)
        except Exception as exc:  # a scenario that cannot finish is reported, and the others still run
            outcome.error = f"{type(exc).__name__}: {exc}"
            echo(f"    ERROR {outcome.error}")
            if name == "reference":
                break  # nothing to compare against
            continue
        if name == "reference":
            reference, result.processing_seconds = outputs, run.measured or 0.0
        elif outcome.fingerprint != result.scenarios[0].fingerprint:
            outcome.error = "input differs from the reference's (fingerprint): results not comparable"
            continue
        outcome.streams = {s: compare(reference[s], outputs[s]) for s in STREAMS}
    echo("")
    echo(render(result))
    _clean_up(run_dir, names, keep=config.keep or not result.ok, echo=echo)
    return result


def _run_scenario(scenario: Scenario, settings: Settings, directory: Path, config: VerifyConfig,
                  records: list[RawRecord], processing: float, echo: Echo,
                  outcome: ScenarioResult) -> tuple[dict[str, list[Keyed]], ScenarioRun]:
    """A fresh broker, the topics, the preloaded input, then the scenario's play; its outputs once finished."""
    started = time.monotonic()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    with EmbeddedBroker(log_path=directory / "broker.log") as broker:
        s = settings.with_(bootstrap_servers=broker.bootstrap_servers, app_id=scenario.app_id)
        run = ScenarioRun(scenario.name, s, directory, config, processing, echo)
        create_topics(s)
        produce_raw(broker.bootstrap_servers, records, topics=s.topics)  # key: the vendor event id, so partitions are fixed too
        outcome.fingerprint = input_fingerprint(broker.bootstrap_servers, len(records), s.topics)
        run.note(f"preloaded {len(records)} raw records (input {outcome.fingerprint})")
        try:
            scenario.play(run)
        finally:
            run.close()
            outcome.timeline = run.timeline
        outputs = collect(broker.bootstrap_servers, scenario.app_id, s.topics)
        run.note(f"collected {sum(map(len, outputs.values()))} records")
        if config.keep:
            dump_topics(broker.bootstrap_servers, directory / "topics")
    outcome.seconds = round(time.monotonic() - started, 1)
    return outputs, run


def dump_topics(bootstrap: str, directory: Path) -> None:
    """Every topic of a kept scenario's broker, one JSON line a record (the broker's storage is memory:
    this is what is left to debug a failure from, the internal topics and changelogs included)."""
    directory.mkdir(parents=True, exist_ok=True)
    for topic in _all_topics(bootstrap):
        with (directory / f"{topic}.jsonl").open("wb") as out:
            for m in read_complete(bootstrap, topic):
                out.write(orjson.dumps({
                    "partition": m.partition, "offset": m.offset,
                    "key": m.key.decode(errors="replace") if m.key is not None else None,
                    "headers": {k: v.decode(errors="replace") for k, v in (m.headers or ())},
                    "value": m.value.decode(errors="replace") if m.value is not None else None}) + b"\n")


def _clean_up(run_dir: Path, names: Sequence[str], keep: bool, echo: Echo) -> None:
    """Remove only what the verifier wrote (scenario dirs), and the run dir if that leaves it empty."""
    if keep:
        echo(f"worker logs and data kept in {run_dir}")
        return
    for name in names:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    try:
        run_dir.rmdir()
    except OSError:
        pass


# ---- the report ---------------------------------------------------------------------------------------
BUCKETS = ("lost", "spurious", "changed", "duplicates")


def render(result: VerifyResult) -> str:
    """The scenario × stream table, examples for every non-zero bucket, and the verdict line."""
    head = f"{'scenario':<22}{'stream':<21}{'ref':>7}{'got':>7}{'lost':>7}{'spur':>7}{'chg':>7}{'dup':>7}"
    lines = [head, "-" * len(head)]
    notes: list[str] = []
    for sc in result.scenarios:
        if sc.error:
            lines.append(f"{sc.name:<22}ERROR: {sc.error.splitlines()[0][:120]}")
        for stream, c in sc.streams.items():
            flag = "" if c.ok else "  <--"
            lines.append(f"{sc.name:<22}{stream:<21}{c.ref:>7}{c.got:>7}{len(c.lost):>7}{len(c.spurious):>7}"
                         f"{len(c.changed):>7}{c.duplicates:>7}{flag}")
            for bucket in BUCKETS:
                for ex in c.examples[bucket]:
                    detail = "; ".join(ex["diff"]) if "diff" in ex else ex.get("reference") or ex.get("got") \
                        or f"{ex['records']} records"
                    notes.append(f"  {sc.name} / {stream} / {bucket}: {ex['id']}: {detail}")
    if notes:
        lines += ["", "examples (up to 3 per bucket):", *notes]
    lines += ["", verdict(result)]
    return "\n".join(lines)


def verdict(result: VerifyResult) -> str:
    bad = []
    for sc in result.scenarios:
        if sc.error:
            bad.append(f"{sc.name}: error")
        counts = {b: sum(len(getattr(c, b)) for c in sc.streams.values()) for b in ("lost", "spurious", "changed")}
        if any(counts.values()):
            bad.append(f"{sc.name}: " + ", ".join(f"{n} {b}" for b, n in counts.items() if n))
    if bad or not result.scenarios:
        return "VERDICT: FAIL (" + ("; ".join(bad) or "nothing ran") + ")"
    dups = sum(c.duplicates for sc in result.scenarios for c in sc.streams.values())
    return (f"VERDICT: PASS ({len(result.scenarios)} scenario(s) x {len(STREAMS)} streams equal to the reference; "
            f"{dups} duplicate record(s), allowed)")
