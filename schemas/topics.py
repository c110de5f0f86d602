"""Every topic the pipeline reads or writes, in one place.

A deployment's topic names are a function of its namespace (``LIFECYCLE_TOPIC_NAMESPACE``):
:class:`Topics` holds them, built from settings (``Settings.topics``), so two deployments on
one cluster (staging beside production, a what-if run) never read each other's records. The
empty namespace gives the plain names (``lifecycle.raw.crm``, ``lifecycle.stage-transitions``,
...); namespace ``staging`` gives ``staging.lifecycle.raw.crm`` and so on. Faust's own topics
(table changelogs ``<app id>-<table>-changelog``, the assignor's leader topic) are named after
the app id, so each deployment also needs its own ``LIFECYCLE_APP_ID`` (its consumer group).

Raw topics carry ``RawRecord``; the rest carry the model named beside them. The module-level
names (``RAW``, ``STAGE_TRANSITIONS``, ...) are those of the empty namespace, kept for tests and
tools that inspect a default deployment; code serving a deployment takes its ``Topics``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from schemas.accounts import AccountBatch
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.identity import AccountMerged, IdentityDecision
from schemas.handoffs import Handoff
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition
from schemas.base import Record

# Dot-separated words of Kafka's topic characters; no leading, trailing or doubled dot.
NAMESPACE_PATTERN = r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)?$"
BASE_PREFIX = "lifecycle."


@dataclass(frozen=True)
class TopicSpec:
    name: str
    models: tuple[type[Record], ...]  # a value is one of these (told apart by a ``type`` field if several)
    doc: str


PARSED = "lifecycle.parsed"   # + ".<source>.<partition>": the parse stage's topics (Topics.parsed)

# Topics whose messages can pass Kafka's 1 MB default (Topics.large): a parsed message carries each
# record's bytes beside its events (schemas.parsed), a dead letter a record's bytes, escaped.
LARGE_MESSAGE_BYTES = 8 * 1024 * 1024
LARGE_TOPIC_CONFIG = {"max.message.bytes": str(LARGE_MESSAGE_BYTES)}


@dataclass(frozen=True)
class Topics:
    """The topic names of one deployment: the base names under ``namespace`` (empty: none)."""

    namespace: str = ""

    def __post_init__(self) -> None:
        if not re.match(NAMESPACE_PATTERN, self.namespace):
            raise ValueError(f"topic namespace {self.namespace!r}: dot-separated words of letters, digits, "
                             "'_' and '-' (e.g. 'staging' or 'acme.staging'), or empty")

    def name(self, base: str) -> str:
        """A base name (``lifecycle.handoffs``) in this namespace."""
        return f"{self.namespace}.{base}" if self.namespace else base

    @cached_property
    def raw(self) -> dict[SourceKind, str]:
        return {kind: self.name(f"lifecycle.raw.{kind.value}") for kind in SourceKind}

    @cached_property
    def account_events(self) -> str:
        """Internal: resolved events, ticks and merges, keyed by account id."""
        return self.name("lifecycle.account-events")

    @cached_property
    def stage_transitions(self) -> str:
        return self.name("lifecycle.stage-transitions")

    @cached_property
    def handoffs(self) -> str:
        return self.name("lifecycle.handoffs")

    @cached_property
    def sla_breaches(self) -> str:
        return self.name("lifecycle.sla-breaches")

    @cached_property
    def dead_letter(self) -> str:
        return self.name("lifecycle.dead-letter")

    @cached_property
    def identity(self) -> str:
        """Identity decisions and account merges."""
        return self.name("lifecycle.identity")

    @cached_property
    def specs(self) -> tuple[TopicSpec, ...]:
        return (
            *(TopicSpec(name, (RawRecord,), f"Native {kind.value} payloads from connectors, in batches: one "
                                            "RawRecord JSON document per line (schemas.raw_batch)")
              for kind, name in self.raw.items()),
            TopicSpec(self.stage_transitions, (StageTransition,), "Every stage change of every account"),
            TopicSpec(self.handoffs, (Handoff,), "Handoffs between owning teams, re-emitted on each status change"),
            TopicSpec(self.sla_breaches, (SlaBreach,), "SLA deadlines missed, and late recoveries"),
            TopicSpec(self.identity, (IdentityDecision, AccountMerged),
                      "Identity decisions and account merges (audit trail)"),
            TopicSpec(self.dead_letter, (DeadLetter,), "Input that could not be used, with the reason"),
            TopicSpec(self.account_events, (AccountBatch,),
                      "Internal: resolved events, ticks and merges, batched per partition"),
        )

    def all_names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def parsed(self, partitions: int) -> dict[str, tuple[str, int]]:
        """Internal: the parse stage's topics, one per raw partition (``schemas.parsed``), each
        named for its raw topic and partition (``lifecycle.parsed.crm.0``) → that raw partition."""
        return {self.name(f"{PARSED}.{kind.value}.{p}"): (raw, p)
                for kind, raw in self.raw.items() for p in range(partitions)}

    @cached_property
    def parsed_pattern(self) -> str:
        """How the parsed topics are named, for people (schema exports, the bench's listing)."""
        return self.name(f"{PARSED}.<source>.<partition>")

    def is_parsed(self, name: str) -> bool:
        return name.startswith(self.name(f"{PARSED}."))

    def single_partition(self, partitions: int) -> list[str]:
        """Topics with one partition: identity, dead letters and the parsed topics (everything the
        one ordered identity writer reads or writes lands on one worker)."""
        return [*self.parsed(partitions), self.identity, self.dead_letter]

    def large(self, partitions: int) -> list[str]:
        """Topics created with ``LARGE_TOPIC_CONFIG``: the parsed topics and the dead letters."""
        return [*self.parsed(partitions), self.dead_letter]

    def spec(self, name: str) -> TopicSpec:
        return next(s for s in self.specs if s.name == name)

    def short(self, name: str) -> str:
        """A topic's short name, as ``lifecycle tail`` takes it (``stage-transitions``, ``raw.crm``)."""
        ns = f"{self.namespace}." if self.namespace else ""
        return name.removeprefix(ns).removeprefix(BASE_PREFIX)

    def resolve(self, name: str) -> str:
        """A topic of this namespace by its full name or its short one; ValueError if there is none."""
        for full in self.all_names():
            if name in (full, self.short(full)):
                return full
        raise ValueError(f"unknown topic {name!r}; known: {', '.join(self.short(n) for n in self.all_names())}"
                         + (f" (namespace {self.namespace!r})" if self.namespace else ""))


# ---- the empty namespace's names (a default deployment) ----------------------------------------------
DEFAULT = Topics()
RAW = DEFAULT.raw
RAW_CRM = RAW[SourceKind.CRM]
RAW_BILLING = RAW[SourceKind.BILLING]
RAW_PRODUCT = RAW[SourceKind.PRODUCT]
RAW_SUPPORT = RAW[SourceKind.SUPPORT]

ACCOUNT_EVENTS = DEFAULT.account_events
STAGE_TRANSITIONS = DEFAULT.stage_transitions
HANDOFFS = DEFAULT.handoffs
SLA_BREACHES = DEFAULT.sla_breaches
DEAD_LETTER = DEFAULT.dead_letter
IDENTITY = DEFAULT.identity

PUBLIC: tuple[TopicSpec, ...] = DEFAULT.specs


def all_topic_names() -> list[str]:
    return DEFAULT.all_names()
