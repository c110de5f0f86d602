"""The journey's configuration: stages, owners, entry criteria, identity, segments, handoffs
and SLAs, as pydantic models. A leaf of the core: the engine and trackers import it, it imports
only other configuration (``sla_rules``, ``handoff_rules``, ``calendar``, ``predicates``).
Reading a journey file (YAML, error messages naming the field) is ``pipeline.journey``'s job.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.core.calendar import CalendarConfig
from pipeline.core.handoff_rules import HandoffConfig
from pipeline.core.predicates import Criterion, FromTo, any_match
from pipeline.core.sla_rules import PROMISED_TTV_ID, PromisedTtvConfig, SlaRule
from schemas.events import LifecycleEvent


class StageKind(StrEnum):
    PATH = "path"              # the main road: MQL → … → advocate, ordered by rank
    REGRESSION = "regression"  # leaving the road: churned
    RETURN = "return"          # coming back: re-engaged


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    owner: str = Field(description="Owning team: marketing, sales, customer_success, advocacy ...")
    kind: StageKind = StageKind.PATH
    rank: int = Field(description="Position on the road; a return stage takes the rank it resumes at")
    entry: tuple[Criterion, ...] = Field(min_length=1)
    allowed_from: tuple[str, ...] | None = Field(
        default=None,
        description="Stages this one may be entered from; default for path stages: any lower rank",
    )
    description: str = ""


NamespaceKind = Literal["crm_account", "account", "deal", "person", "anonymous"]


def _vendor_identity() -> tuple[dict[str, NamespaceKind], tuple[str, ...]]:
    """The connectors' namespaces: configuration the core receives, never imports."""
    from connectors.registry import anchor_preference, identity_tiers

    return identity_tiers(), anchor_preference()


class IdentityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email_domain_fallback: bool = True
    free_email_domains: tuple[str, ...] = (
        "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com",
        "live.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com",
    )
    # Identifier namespaces in order of preference for naming a merged account (default: every
    # vendor's account namespace, CRM first).
    anchor_preference: tuple[str, ...] = Field(default_factory=lambda: _vendor_identity()[1])
    # What each namespace names (crm_account, account, deal, person, anonymous); default: what the
    # vendor modules declare. An unlisted namespace names an account.
    namespaces: dict[str, NamespaceKind] = Field(default_factory=lambda: _vendor_identity()[0])

    def is_provisional(self, account_id: str) -> bool:
        """An account not anchored on a CRM account id (``acct:<anchor>``) may still merge into one."""
        anchor = account_id.removeprefix("acct:")
        return self.namespaces.get(anchor.partition(":")[0]) != "crm_account"


class DealStages(BaseModel):
    """Which CRM deal-stage ids mean won or lost, per pipeline: a custom pipeline's stage ids
    (HubSpot GUIDs, numbers) say nothing themselves. A stage change to a listed id counts as
    ``crm.deal_won`` / ``crm.deal_lost`` for stage entry; ``pipeline`` omitted: any pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str | None = None
    won: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


class SegmentRule(BaseModel):
    """A segment that follows from facts: every fact in ``all`` seen, none in ``none``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    segment: str
    all_: tuple[str, ...] = Field(default=(), alias="all")
    none: tuple[str, ...] = ()

    def holds(self, facts: Collection[str]) -> bool:
        return all(f in facts for f in self.all_) and not any(f in facts for f in self.none)


class Segmentation(BaseModel):
    """How an account's segment is known: stated on an event (the CRM deal's ``segment``), else
    derived from facts its events established (no deal + a card payment → self-serve), else
    the default. Facts, not a default, keep SLAs that exclude a segment from firing on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str = "segment"
    default: str = "mid_market"
    facts: dict[str, tuple[Criterion, ...]] = Field(
        default_factory=dict, description="Named facts: an account has one once any of its events matches")
    rules: tuple[SegmentRule, ...] = Field(default=(), description="First rule that holds gives the segment")

    @model_validator(mode="after")
    def _rules_name_facts(self) -> Segmentation:
        for i, rule in enumerate(self.rules):
            unknown = [f for f in (*rule.all_, *rule.none) if f not in self.facts]
            if unknown:
                raise ValueError(f"rules[{i}] ({rule.segment}) names unknown fact(s) {unknown}; "
                                 f"known: {sorted(self.facts)}")
        return self

    def facts_of(self, event: LifecycleEvent) -> list[str]:
        """The named facts ``event`` establishes."""
        return [name for name, criteria in self.facts.items() if any_match(criteria, event)]

    def segment_of(self, stated: str | None, facts: Collection[str]) -> str:
        if stated:
            return stated
        return next((r.segment for r in self.rules if r.holds(facts)), self.default)


class JourneyDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = 1
    stages: tuple[Stage, ...] = Field(min_length=1)
    backward: tuple[FromTo, ...] = ()
    jumps: Literal["infer", "direct"] = Field(
        default="infer",
        description="On a jump (SQL straight to onboarding): emit the skipped stages as inferred transitions, or one direct transition",
    )
    identity: IdentityConfig = IdentityConfig()
    segmentation: Segmentation = Segmentation()
    deal_stages: tuple[DealStages, ...] = ()
    calendar: CalendarConfig = CalendarConfig()
    handoffs: HandoffConfig = HandoffConfig()
    slas: tuple[SlaRule, ...] = ()
    promised_ttv: PromisedTtvConfig = PromisedTtvConfig()

    @model_validator(mode="after")
    def _consistent(self) -> JourneyDefinition:
        ids = [s.id for s in self.stages]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"stage ids must be unique; repeated: {dupes}")
        known = set(ids)
        for i, stage in enumerate(self.stages):
            for ref in stage.allowed_from or ():
                if ref not in known:
                    raise ValueError(f"stages[{i}] ({stage.id}).allowed_from names unknown stage {ref!r}; known: {ids}")
            if stage.kind is not StageKind.PATH and not stage.allowed_from:
                raise ValueError(f"stages[{i}] ({stage.id}) is a {stage.kind.value} stage and needs allowed_from")
        for j, move in enumerate(self.backward):
            for ref in (move.from_, move.to):
                if ref not in known:
                    raise ValueError(f"backward[{j}] names unknown stage {ref!r}; known: {ids}")
        for k, rule in enumerate(self.slas):
            for ref in rule.stage_refs():
                if ref not in known:
                    raise ValueError(f"slas[{k}] ({rule.id}) names unknown stage {ref!r}; known: {ids}")
        sla_ids = [r.id for r in self.slas]
        if len(set(sla_ids)) != len(sla_ids):
            raise ValueError(f"sla ids must be unique: {sla_ids}")
        for ref in sorted(self.promised_ttv.stage_refs() | self.handoffs.stage_refs()):
            if ref not in known:
                raise ValueError(f"promised_ttv/handoffs name unknown stage {ref!r}; known: {ids}")
        if PROMISED_TTV_ID in sla_ids:
            raise ValueError(f"sla id {PROMISED_TTV_ID!r} is reserved for the promised time-to-value SLA")
        return self

    # ---- lookups used by the engine -------------------------------------------------
    @cached_property
    def by_id(self) -> dict[str, Stage]:
        return {s.id: s for s in self.stages}

    @cached_property
    def path(self) -> tuple[Stage, ...]:
        return tuple(sorted((s for s in self.stages if s.kind is StageKind.PATH), key=lambda s: s.rank))

    @cached_property
    def backward_pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset((m.from_, m.to) for m in self.backward)

    def matching_stages(self, event: LifecycleEvent) -> list[Stage]:
        event = self.deal_outcome(event)
        return [s for s in self.stages if any_match(s.entry, event)]

    def deal_outcome(self, event: LifecycleEvent) -> LifecycleEvent:
        """A ``crm.deal_stage_changed`` to a stage id ``deal_stages`` maps → the won/lost event it means."""
        if event.kind != "crm.deal_stage_changed" or not self.deal_stages:
            return event
        stage, pipeline = event.attributes.get("stage"), event.attributes.get("pipeline")
        for rule in self.deal_stages:
            if rule.pipeline is not None and rule.pipeline != pipeline:
                continue
            if stage in rule.won:
                return event.model_copy(update={"kind": "crm.deal_won"})
            if stage in rule.lost:
                return event.model_copy(update={"kind": "crm.deal_lost"})
        return event

    def owner_of(self, stage_id: str | None) -> str | None:
        return self.by_id[stage_id].owner if stage_id in self.by_id else None
