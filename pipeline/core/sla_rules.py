"""SLA rules as the journey file states them (``slas:``, ``promised_ttv:``): configuration
only, so the journey's models can import them without the tracker (``pipeline.core.sla``)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pipeline.core.durations import Duration
from pipeline.core.predicates import AnyOf, Criterion
from schemas.events import LifecycleEvent

PROMISED_TTV_ID = "promised-ttv"

Severity = Literal["low", "medium", "high", "critical"]


class Anchor(BaseModel):
    """Where an SLA clock starts or what stops it: entering a stage, or an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str | None = None
    event: Criterion | None = None

    @model_validator(mode="after")
    def _one(self) -> Anchor:
        if (self.stage is None) == (self.event is None):
            raise ValueError("give exactly one of 'stage' or 'event'")
        return self

    def matches_event(self, event: LifecycleEvent) -> bool:
        return self.event is not None and self.event.matches(event)


def _listed(value: Any) -> Any:
    """One anchor or a list of them ("any of") read the same way."""
    return (value,) if isinstance(value, (dict, Anchor)) else value


Anchors = Annotated[tuple[Anchor, ...], BeforeValidator(_listed), Field(min_length=1)]


class SlaKind(StrEnum):
    DEADLINE = "deadline"
    INACTIVITY = "inactivity"
    BEFORE_DATE = "before_date"


def _stage_refs(start: tuple[Anchor, ...], expect: tuple[Anchor, ...], cancel: tuple[str, ...]) -> set[str]:
    return {a.stage for a in (*start, *expect) if a.stage} | set(cancel)


def _event_kinds(*anchors: Anchor) -> set[str]:
    return {a.event.kind for a in anchors if a.event}


class SlaRule(BaseModel):
    """One SLA of the journey file, e.g. "customer kickoff within 5 business days of closed-won"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    owner: str = Field(description="Team accountable for meeting it")
    severity: Severity = "medium"
    kind: SlaKind = SlaKind.DEADLINE
    start: Anchors
    expect: Anchors = Field(description="Any of these stops the clock (inactivity: restarts it)")
    within: Duration = Field(description="'5 business days', '24 hours', '30 days'; before_date: how long before the date")
    segments: tuple[str, ...] | None = Field(default=None, description="Only accounts in these segments; none: all")
    cancel_on_stages: tuple[str, ...] = Field(default=(), description="Entering one of these drops the clock, no breach")
    active_for: Duration | None = Field(default=None, description="inactivity: how long after the start the rule watches")
    date_attribute: tuple[str, ...] = Field(
        default=(), description="before_date: the start event's date attribute(s), first present wins")

    @model_validator(mode="before")
    @classmethod
    def _one_attribute(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("date_attribute"), str):
            data = {**data, "date_attribute": (data["date_attribute"],)}
        return data

    @model_validator(mode="after")
    def _fits_kind(self) -> SlaRule:
        if self.active_for is not None and self.kind is not SlaKind.INACTIVITY:
            raise ValueError("active_for applies only to kind: inactivity")
        if self.kind is SlaKind.INACTIVITY and self.within.amount == 0:
            raise ValueError("an inactivity rule needs a non-zero 'within'")
        if self.kind is SlaKind.BEFORE_DATE:
            if not self.date_attribute:
                raise ValueError("kind: before_date needs date_attribute (e.g. current_period_end)")
            if any(a.stage for a in self.start):
                raise ValueError("kind: before_date starts on an event carrying the date, not on a stage")
        elif self.date_attribute:
            raise ValueError("date_attribute applies only to kind: before_date")
        return self

    def stage_refs(self) -> set[str]:
        return _stage_refs(self.start, self.expect, self.cancel_on_stages)

    def event_kinds(self) -> set[str]:
        return _event_kinds(*self.start, *self.expect)

    def applies_to(self, segment: str | None) -> bool:
        return self.segments is None or segment in self.segments

    # The anchors split for the hot path: stage anchors as sets, event anchors by kind.
    @cached_property
    def start_stages(self) -> frozenset[str]:
        return frozenset(a.stage for a in self.start if a.stage is not None)

    @cached_property
    def start_events(self) -> AnyOf:
        return AnyOf(a.event for a in self.start if a.event is not None)

    @cached_property
    def expect_stages(self) -> frozenset[str]:
        return frozenset(a.stage for a in self.expect if a.stage is not None)

    @cached_property
    def expect_events(self) -> AnyOf:
        return AnyOf(a.event for a in self.expect if a.event is not None)


class PromisedTtvConfig(BaseModel):
    """``promised_ttv:``: the SLA a deal's own promise creates ("live in 48 hours")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    name: str = "Promised time-to-value"
    owner: str = "customer_success"
    severity: Severity = "high"
    attribute: str = Field(default="promised_time_to_value", description="Deal attribute holding the promise")
    promised_by: tuple[Criterion, ...] = (Criterion(kind="crm.deal_won"), Criterion(kind="crm.opportunity_created"))
    start: Anchors = (Anchor(stage="closed-won"),)
    expect: Anchors = (Anchor(stage="adoption"),)
    cancel_on_stages: tuple[str, ...] = ("churned",)

    @model_validator(mode="after")
    def _starts_on_stage(self) -> PromisedTtvConfig:
        if any(a.event for a in self.start):
            raise ValueError("promised_ttv.start must name stages: the clock runs from entering them")
        return self

    def rule(self, within: Duration) -> SlaRule:
        return SlaRule(id=PROMISED_TTV_ID, name=f"{self.name} ({within})", owner=self.owner,
                       severity=self.severity, start=self.start, expect=self.expect, within=within,
                       cancel_on_stages=self.cancel_on_stages)

    def stage_refs(self) -> set[str]:
        return _stage_refs(self.start, self.expect, self.cancel_on_stages)

    def event_kinds(self) -> set[str]:
        return _event_kinds(*self.expect) | {c.kind for c in self.promised_by}

    @cached_property
    def promised_by_any(self) -> AnyOf:
        return AnyOf(self.promised_by)
