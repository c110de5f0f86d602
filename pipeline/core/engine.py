"""The stage engine: (account state, event) → (state, transitions). Pure and deterministic.

Rules, in the order they are checked:

1. **Idempotent on event id.** A re-delivered event changes nothing.
2. **Entry criteria.** The event is matched against every stage's entry criteria.
   An event that matches the current stage, or none, does not move the account.
3. **Allowed moves.** Forward along the path (higher rank) is always allowed;
   regression and return stages are entered only from their ``allowed_from``
   stages; a backward path move only where the definition's ``backward`` lists it.
   Leaving a regression stage (churned) needs an explicit ``allowed_from``.
4. **Event time.** A late event (older than the account's entry into its current
   stage) may still move it forward, but never backwards or out of the path:
   it is recorded in ``state.ignored`` with reason ``late``.
5. **Jumps.** With ``jumps: infer`` a forward jump along the path (SQL straight to
   onboarding) emits the skipped stages as ``inferred`` transitions at the same
   event time, then the real one; ``direct`` emits one transition. An account's
   first stage is wherever its first matching event puts it: nothing is inferred
   before it.

Transition ids derive from (account, target stage, triggering event id), so a
replay or retry emits the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pipeline.core.predicates import KindIndex
from pipeline.core.state import AccountState, IgnoredMove, StageVisit
from pipeline.core.journey import JourneyDefinition, Stage, StageKind
from schemas.events import LifecycleEvent
from schemas.transitions import StageTransition


class Outcome(StrEnum):
    """What the engine did with one event (a bounded set: used as a metric label)."""

    MOVED = "moved"
    DUPLICATE = "duplicate"
    NO_MATCH = "no_match"
    SAME_STAGE = "same_stage"
    NOT_ALLOWED = "not_allowed"
    LATE = "late"


@dataclass
class EngineResult:
    outcome: Outcome
    transitions: list[StageTransition] = field(default_factory=list)


_PREFERENCE = {"regression": 0, "return": 1, "forward": 2, "backward": 3}


class _Criteria:
    """A journey's entry criteria and segmentation facts indexed by event kind, so an event is
    tested only against criteria that can match it (``Journey.matching_stages`` tests all)."""

    __slots__ = ("journey", "stages", "facts")

    def __init__(self, journey: JourneyDefinition) -> None:
        self.journey = journey   # held: the cache is keyed by id(journey)
        self.stages: KindIndex[Stage] = KindIndex((s, s.entry) for s in journey.stages)
        self.facts: KindIndex[str] = KindIndex(journey.segmentation.facts.items())


_CRITERIA: dict[int, _Criteria] = {}
_CRITERIA_KEPT = 64   # journeys indexed at once (a process has one or two; tests make many)


def criteria_of(journey: JourneyDefinition) -> _Criteria:
    """The journey's indexed criteria, built once per journey object."""
    found = _CRITERIA.get(id(journey))
    if found is None or found.journey is not journey:
        if len(_CRITERIA) >= _CRITERIA_KEPT:
            _CRITERIA.clear()
        found = _CRITERIA[id(journey)] = _Criteria(journey)
    return found


def _direction(journey: JourneyDefinition, current: Stage | None, target: Stage) -> str | None:
    """How ``target`` may be entered from ``current``, or None if it may not."""
    if target.allowed_from is not None:
        if current is None or current.id not in target.allowed_from:
            return None
        if target.kind is StageKind.REGRESSION:
            return "regression"
        if target.kind is StageKind.RETURN:
            return "return"
        return "forward" if target.rank > current.rank else "backward"
    if target.kind is not StageKind.PATH:
        return None
    if current is None:
        return "forward"
    if current.kind is StageKind.REGRESSION:
        return None
    if target.rank > current.rank:
        return "forward"
    if (current.id, target.id) in journey.backward_pairs:
        return "backward"
    return None


def choose_target(
    journey: JourneyDefinition, current_id: str | None, candidates: list[Stage]
) -> tuple[Stage | None, str | None, Outcome]:
    """Pick the stage an event moves the account to among those it matches."""
    if not candidates:
        return None, None, Outcome.NO_MATCH
    if any(c.id == current_id for c in candidates):
        return None, None, Outcome.SAME_STAGE
    current = journey.by_id.get(current_id) if current_id else None
    eligible = [(c, d) for c in candidates if (d := _direction(journey, current, c)) is not None]
    if not eligible:
        return None, None, Outcome.NOT_ALLOWED
    # Leaving the road beats staying on it; on the road, the furthest stage wins.
    target, direction = min(eligible, key=lambda cd: (_PREFERENCE[cd[1]], -cd[0].rank))
    return target, direction, Outcome.MOVED


def _path_between(journey: JourneyDefinition, current: Stage, target: Stage) -> list[Stage]:
    return [s for s in journey.path if current.rank < s.rank < target.rank]


def apply_event(
    journey: JourneyDefinition, state: AccountState, event: LifecycleEvent, emitted_at: datetime
) -> EngineResult:
    """Advance ``state`` (in place) by one event; return what happened and the transitions."""
    if not state.remember(event.event_id):
        return EngineResult(Outcome.DUPLICATE)

    state.events_seen += 1
    if state.first_event_at is None or event.occurred_at < state.first_event_at:
        state.first_event_at = event.occurred_at
    if state.last_event_at is None or event.occurred_at > state.last_event_at:
        state.last_event_at = event.occurred_at
    _absorb_account_facts(journey, state, event)

    candidates = criteria_of(journey).stages.matching(journey.deal_outcome(event))
    target, direction, outcome = choose_target(journey, state.stage, candidates)
    if target is None:
        if outcome is Outcome.NOT_ALLOWED:
            state.note_ignored(IgnoredMove(event_id=event.event_id, occurred_at=event.occurred_at,
                                           target=candidates[0].id, reason="not_allowed"))
        return EngineResult(outcome)

    late = state.stage_entered_at is not None and event.occurred_at < state.stage_entered_at
    if late and direction != "forward":
        state.note_ignored(IgnoredMove(event_id=event.event_id, occurred_at=event.occurred_at,
                                       target=target.id, reason="late"))
        return EngineResult(Outcome.LATE)

    current = journey.by_id.get(state.stage) if state.stage else None
    steps: list[tuple[Stage, bool]] = []
    if (journey.jumps == "infer" and direction == "forward" and current is not None
            and current.kind is StageKind.PATH):
        steps.extend((s, True) for s in _path_between(journey, current, target))
    steps.append((target, False))

    transitions = []
    for stage, inferred in steps:
        transitions.append(_enter(journey, state, stage, event, emitted_at,
                                  direction="forward" if inferred else direction, inferred=inferred))
    return EngineResult(Outcome.MOVED, transitions)


def _enter(journey: JourneyDefinition, state: AccountState, stage: Stage, event: LifecycleEvent,
           emitted_at: datetime, direction: str, inferred: bool) -> StageTransition:
    entered_at = event.occurred_at
    time_in_prev = None
    if state.stage_entered_at is not None:
        time_in_prev = max(0.0, (entered_at - state.stage_entered_at).total_seconds())
        entered_at = max(entered_at, state.stage_entered_at)
    transition = StageTransition(
        transition_id=StageTransition.make_id(state.account_id, stage.id, event.event_id),
        account_id=state.account_id,
        from_stage=state.stage,
        to_stage=stage.id,
        occurred_at=event.occurred_at,
        trigger_event_id=event.event_id,
        trigger_kind=event.kind,
        from_owner_team=journey.owner_of(state.stage),
        to_owner_team=stage.owner,
        owner_id=state.crm_owner_id,
        time_in_previous_stage_seconds=time_in_prev,
        inferred=inferred,
        direction=direction,
        provisional=journey.identity.is_provisional(state.account_id),
        emitted_at=emitted_at,
    )
    state.stage = stage.id
    state.stage_entered_at = entered_at
    state.history.append(StageVisit(stage=stage.id, entered_at=entered_at,
                                    trigger_event_id=event.event_id, inferred=inferred))
    return transition


def _absorb_account_facts(journey: JourneyDefinition, state: AccountState, event: LifecycleEvent) -> None:
    """Facts about the account that events carry besides stage changes: owner, segment."""
    attrs = event.attributes
    if event.kind == "crm.owner_changed" and attrs.get("owner_id"):
        state.crm_owner_id = str(attrs["owner_id"])
    elif event.source == "crm" and attrs.get("owner_id") and state.crm_owner_id is None:
        state.crm_owner_id = str(attrs["owner_id"])
    segment = attrs.get(journey.segmentation.attribute)
    if isinstance(segment, str) and segment:
        state.segment = segment
    if journey.segmentation.facts:
        for fact in criteria_of(journey).facts.matching(event):
            if fact not in state.facts:
                state.facts.append(fact)
