"""Handoff rules as the journey file states them (``handoffs:``): configuration only, so the
journey's models can import them without the tracker (``pipeline.core.handoffs``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.core.durations import Duration
from pipeline.core.predicates import Criterion, FromTo


class NamedEvent(StrEnum):
    """The boundary the sales → customer success handoff synchronizes on."""

    CONTRACT_EXECUTION = "contract_execution"
    FIRST_ACTIVATION = "first_activation"
    EITHER = "either"


class ReceivingTeam(BaseModel):
    """What counts as the receiving team picking the account up, and how soon it must."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_within: Duration = Duration.parse("5 business days")
    first_action: tuple[Criterion, ...] = Field(default=(Criterion(kind="crm.activity_logged"),), min_length=1)


class HandoffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    overlap_days: int = Field(default=45, ge=30, le=90,
                              description="How long the sending owner stays on after the handoff")
    directions: tuple[str, ...] = Field(
        default=("forward", "return"),
        description="Transition directions that hand an account over (not regression: churn is not a handoff)")
    named_route: FromTo = FromTo(from_="sales", to="customer_success")
    named_event: dict[str, NamedEvent] = {
        "enterprise": NamedEvent.CONTRACT_EXECUTION,
        "mid_market": NamedEvent.EITHER,
        "self_serve": NamedEvent.FIRST_ACTIVATION,
    }
    named_event_default: NamedEvent = NamedEvent.EITHER
    contract_stage: str = Field(default="closed-won", description="Entering it is contract execution")
    activation_stage: str = Field(default="adoption", description="Entering it is first product activation")
    activation_events: tuple[Criterion, ...] = (
        Criterion(kind="product.track", where={"event": ["Workspace Activated", "First Value Reached"]}),
    )
    teams: dict[str, ReceivingTeam] = {
        "sales": ReceivingTeam(accept_within=Duration.parse("2 days"), first_action=(
            Criterion(kind="crm.activity_logged"), Criterion(kind="crm.opportunity_created"))),
        "customer_success": ReceivingTeam(accept_within=Duration.parse("5 business days")),
        "advocacy": ReceivingTeam(accept_within=Duration.parse("10 business days")),
    }
    default_team: ReceivingTeam = ReceivingTeam()

    @model_validator(mode="after")
    def _known_directions(self) -> HandoffConfig:
        unknown = set(self.directions) - {"forward", "backward", "regression", "return"}
        if unknown:
            raise ValueError(f"directions: unknown {sorted(unknown)}; use forward, backward, regression, return")
        return self

    def team(self, name: str) -> ReceivingTeam:
        return self.teams.get(name, self.default_team)

    def mode_for(self, segment: str | None) -> NamedEvent:
        return self.named_event.get(segment or "", self.named_event_default)

    def stage_refs(self) -> set[str]:
        return {self.contract_stage, self.activation_stage}

    def event_kinds(self) -> set[str]:
        teams = (*self.teams.values(), self.default_team)
        # crm.owner_changed names the receiving owner (to_owner).
        return ({"crm.owner_changed"} | {c.kind for c in self.activation_events}
                | {c.kind for t in teams for c in t.first_action})
