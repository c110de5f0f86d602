"""Golden outputs: everything the worker's pure path publishes and keeps, byte for byte.

The offline driver (``pipeline.offline.OfflinePipeline``: parse → event-time merge → identity
→ ``PartitionLogic``) runs generated samples and fixed multi-source histories; every output
record (transitions with their trigger events, handoffs, SLA breaches, merges, dead letters)
and every final table value (account states, identity links and accounts) is dumped as
canonical JSON (``model_dump(mode="json")``, sorted keys, publication order kept) and
hashed per category. ``emitted_at``/``failed_at`` are pinned by the driver's clock.

The expected digests below were computed by the code *before* the lean-core work (issue 9
item 4, issue 12 item 3; commit 2c0b697), so any optimisation must leave them untouched.
The account-state digests were updated once since, for a new field and nothing else
(``AccountState.held_len``: held messages moved to slots of their own; every other output
unchanged, and the states equal to the old ones without that field), and once for the form of
one field (``AccountState.recent_event_ids``, the idempotency window, written as base64 of its
packed digests instead of a list of integers: with the window read back as integers, every
digest, the account states' included, equals the one before). The output digests were
updated once, for their order alone: a merge within one partition hands the journal over in place
(``core.partition``), so the survivor's outputs are published in that batch rather than a later
one; every stream's records, the account states, merges, triggers and identity are unchanged as
sets (checked stream by stream for all three scenarios). A deliberate change of
behaviour updates them: run
``python -m tests.core.test_golden_outputs`` and paste what it prints, saying why in the commit.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from pipeline.journey import JourneyDefinition, load_journey
from pipeline.offline import OfflinePipeline, RawInput
from pipeline.sample import SampleConfig, generate
from schemas import topics as T
from schemas.events import RawRecord
from tests import histories as h
from tests.whatif.helpers import KICKOFF_5, SHIPPED

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


def _journey_variant(old: str, new: str) -> JourneyDefinition:
    import yaml

    from pipeline.journey import parse_journey

    text = SHIPPED.read_text()
    assert text.count(old) == 1, f"the shipped journey changed around {old!r}; regenerate the golden digests"
    return parse_journey(yaml.safe_load(text.replace(old, new)), "variant")


def _kickoff_3() -> JourneyDefinition:
    return _journey_variant(KICKOFF_5, KICKOFF_5.replace("5 business days", "3 business days"))


def _no_domain_fallback() -> JourneyDefinition:
    """Other identity settings: its own identity group (events copied per group)."""
    return _journey_variant("identity:\n  email_domain_fallback: true", "identity:\n  email_domain_fallback: false")


def _sources(records: list[RawRecord]) -> dict[tuple[str, int], list[RawInput]]:
    sources: dict[tuple[str, int], list[RawInput]] = defaultdict(list)
    for record in records:
        key = (T.RAW[record.source], 0)
        sources[key].append(RawInput(key[0], 0, len(sources[key]), record.model_dump_json().encode()))
    return dict(sources)


def _histories() -> list[RawRecord]:
    """Merges (contact first, deal before company), self-serve, a pending kickoff, a future date;
    receipt times pinned (some helpers stamp the wall clock)."""
    records = [*h.contact_first(900100, 500100), *h.deal_before_company(900200, 700200),
               *h.self_serve("cus_golden"), *h.won_without_kickoff(900300),
               h.future_dated(900400, h.day(400)), *h.contact_first(900500, 500500)]
    return [r.model_copy(update={"received_at": h.T0}) for r in records]


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _digest(values: Any) -> str:
    return hashlib.sha256(orjson.dumps(values, default=_dump, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def run_scenario(records: list[RawRecord], journeys: list[JourneyDefinition], now: datetime,
                 partitions: int = 4) -> dict[str, str]:
    """Digest per category of one replay of ``records`` through ``journeys`` in one pass."""
    pipeline = OfflinePipeline(journeys, now=now, partitions=partitions)
    outputs = pipeline.run(_sources(records))
    stats = pipeline.stats
    digests = {"stats": _digest([stats.records, stats.events, stats.ignored]),
               "dead_letters": _digest(stats.dead_letters)}
    for i, out in enumerate(outputs):
        digests[f"{i}.transitions"] = _digest(out.transitions)
        digests[f"{i}.triggers"] = _digest(sorted((k, v.event_id) for k, v in out.triggers.items()))
        digests[f"{i}.handoffs"] = _digest(out.handoffs)
        digests[f"{i}.breaches"] = _digest(out.breaches)
        digests[f"{i}.merges"] = _digest(out.merges)
        digests[f"{i}.accounts"] = _digest(sorted(out.accounts.items()))
    for g, group in enumerate(pipeline.groups):
        digests[f"identity{g}.links"] = _digest(sorted(group.resolver.links.items()))
        digests[f"identity{g}.accounts"] = _digest(sorted(group.resolver.accounts.items()))
    return digests


SCENARIOS: dict[str, Callable[[], dict[str, str]]] = {
    "sample-200-seed11": lambda: run_scenario(list(generate(SampleConfig(accounts=200, seed=11))),
                                              [load_journey(), _kickoff_3(), _no_domain_fallback()], NOW),
    "sample-60-seed7": lambda: run_scenario(list(generate(SampleConfig(accounts=60, seed=7))),
                                            [load_journey()], NOW, partitions=3),
    "histories": lambda: run_scenario(_histories(), [load_journey()], h.day(30)),
}

# Produced by ``python -m tests.core.test_golden_outputs`` at commit 2c0b697 (before any
# lean-core change): the pre-optimisation code's outputs; the merged records' transitions
# re-taken at e5d1fd4 (merged records carry the merge's time: a deliberate change), whose core
# was still the pre-optimisation one.
EXPECTED: dict[str, dict[str, str]] = {
    "histories": {
        "0.accounts": "97d9721c2f8fa782df3a6d81",
        "0.breaches": "847d4a5c4bf2806a484021d8",
        "0.handoffs": "512bb3270a82abf3b21c356e",
        "0.merges": "02de39d5eb984b3ffce1efed",
        "0.transitions": "bec7120bd87f35554c6eee1b",
        "0.triggers": "0d43cb6297f683539b264d99",
        "dead_letters": "f6bc252c5ed1ab9de55b3201",
        "identity0.accounts": "f66a561adef1c3532d1bed45",
        "identity0.links": "2a95a6bc3530268fbcc67314",
        "stats": "e42ea9460330fd6b44d99fef",
    },
    "sample-200-seed11": {
        "0.accounts": "ea9863ff8581f218bd894097",
        "0.breaches": "34b17c5c74250d41fd7ab5f3",
        "0.handoffs": "088e05aff58be250483423c6",
        "0.merges": "f7afe1933ee76ed130a315ac",
        "0.transitions": "ef939146f5f4a0172fa1bb27",
        "0.triggers": "3bd2779c97fa1ccbc8a2a8a8",
        "1.accounts": "01f9b2836c1da9d6137c9dbe",
        "1.breaches": "1596b95f15d29991d8d160db",
        "1.handoffs": "088e05aff58be250483423c6",
        "1.merges": "f7afe1933ee76ed130a315ac",
        "1.transitions": "ef939146f5f4a0172fa1bb27",
        "1.triggers": "3bd2779c97fa1ccbc8a2a8a8",
        "2.accounts": "8d4058018ee00e2570191fa4",
        "2.breaches": "5a8d595d8cf04c47f35fa2ae",
        "2.handoffs": "f1070a8b7a664c6626c8a3da",
        "2.merges": "a0ad58c21f86cdda7082657a",
        "2.transitions": "5ef94dfd56f3a2211611f47e",
        "2.triggers": "95f02c6156c704c60d5f1aae",
        "dead_letters": "f7e38f14ac5ea342012ef5eb",
        "identity0.accounts": "8a2d4fadf203e6b1c7fe191b",
        "identity0.links": "4ebbdfefad56fb3740f1026c",
        "identity1.accounts": "53856b9544cd067e8ffb5f9d",
        "identity1.links": "20af5da1ba338d943bdda2a9",
        "stats": "fae39afe212cdba692b1c496",
    },
    "sample-60-seed7": {
        "0.accounts": "98feba2a57a6f150933d7778",
        "0.breaches": "fb8cebce52e52ea872e35465",
        "0.handoffs": "714e0fe885e4c445d5b4fa2b",
        "0.merges": "a567c68982d4cb7ea7757b75",
        "0.transitions": "507a70bf98e3e3a0645bce18",
        "0.triggers": "90e1b99cbb8b0d9974fd5fa3",
        "dead_letters": "7f4a745ec687190ac8601125",
        "identity0.accounts": "e007474882a3ce037f9b7bf3",
        "identity0.links": "45b05dae624b783c3cfc69ff",
        "stats": "9c441151d5e1379f8d3bc5ec",
    },
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_outputs_are_byte_for_byte_those_of_the_reference_code(name: str) -> None:
    got = SCENARIOS[name]()
    expected = EXPECTED[name]
    changed = {k: (expected.get(k), v) for k, v in got.items() if expected.get(k) != v}
    assert not changed and set(got) == set(expected), f"{name}: outputs changed: {changed}"


if __name__ == "__main__":
    import pprint

    pprint.pprint({name: make() for name, make in SCENARIOS.items()}, width=120, sort_dicts=True)
