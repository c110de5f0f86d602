"""Enrichment against the polling tests' fake vendor API: notifications that carry ids become
the objects they name; rate limits are honoured; a read that keeps failing is dead-lettered."""

from __future__ import annotations

import orjson
import pytest

from connectors.enrich import EnrichmentFailed, Enricher
from connectors.registry import parser_for
from connectors.sink import RecordSink
from tests.connectors.test_poll import TOKEN, FakeVendorApi, api, config  # noqa: F401
from tests.connectors.transport_helpers import parsers, topics  # noqa: F401
from tests.fixtures.vendors import INGESTED

pytestmark = pytest.mark.integration

# A meeting creation, as HubSpot's generic webhook subscription sends it: ids, no meaning.
MEETING_CREATED = {"eventId": 4021, "subscriptionId": 77, "portalId": 62515, "appId": 1160452,
                   "occurredAt": 1767600000000, "subscriptionType": "object.creation", "attemptNumber": 0,
                   "objectId": 51234, "objectTypeId": "0-47", "changeSource": "CRM_UI"}
MEETING = {"id": "51234", "createdAt": "2026-01-05T08:00:00Z", "updatedAt": "2026-01-05T08:00:00Z",
           "archived": False,
           "properties": {"hs_meeting_title": "Customer kickoff: Acme", "hs_meeting_start_time": "2026-01-06T15:00:00Z",
                          "hs_timestamp": "2026-01-06T15:00:00Z", "hs_meeting_outcome": "COMPLETED",
                          "hubspot_owner_id": "910", "hs_createdate": "2026-01-05T08:00:00Z"},
           "associations": {"companies": {"results": [{"id": "1001", "type": "meeting_event_to_company"}]}}}
PATH = "/crm/v3/objects/meetings/51234"


def enricher(api: FakeVendorApi, **kw) -> Enricher:  # noqa: F811
    return Enricher({"hubspot": config(api, "hubspot", max_attempts=kw.pop("attempts", 4))}, **kw)


def test_a_meeting_creation_needs_the_object_and_alone_is_not_a_kickoff():
    from connectors.base import ParseError

    with pytest.raises(ParseError) as exc:
        parser_for("hubspot").parse(MEETING_CREATED, INGESTED)
    assert exc.value.reason == "enrichment_failed"


async def test_meeting_creation_is_read_through_rate_limits_and_parsed_as_the_kickoff(api):  # noqa: F811
    api.objects[PATH] = MEETING
    api.faults.append((PATH, 429, {"Retry-After": "0"}))
    e = enricher(api)
    try:
        req = e.request("hubspot", MEETING_CREATED)
        assert req is not None and req.path == PATH and "hs_meeting_title" in req.params["properties"]
        [full] = await e.complete("hubspot", MEETING_CREATED, req)
        again = await e.complete("hubspot", MEETING_CREATED, req)   # a second subscription: from the cache
    finally:
        await e.close()
    assert [status for _, path, status in api.log if path == PATH] == [429, 200]
    assert e.fetches == 1 and again == [full]
    [event] = parser_for("hubspot").parse(full, INGESTED)
    assert (event.kind, event.attributes["activity_type"], event.identifiers) == (
        "crm.activity_logged", "kickoff", ["hubspot.company:1001"])
    assert event.occurred_at.isoformat() == "2026-01-06T15:00:00+00:00"


async def test_the_cache_is_bounded(api):  # noqa: F811
    e = enricher(api, cache_size=2)
    try:
        for n in range(4):
            api.objects[f"/crm/v3/objects/meetings/{n}"] = {**MEETING, "id": str(n)}
            note = {**MEETING_CREATED, "objectId": n}
            await e.complete("hubspot", note, e.request("hubspot", note))
    finally:
        await e.close()
    assert len(e._cache) == 2


async def test_a_read_that_keeps_failing_is_dead_lettered_with_the_original_bytes(api, topics, parsers):  # noqa: F811
    api.faults.extend([(PATH, 503, {})] * 3)
    e = enricher(api, attempts=3)
    body = orjson.dumps([MEETING_CREATED])
    try:
        async with RecordSink(topics, enricher=e) as sink:
            submitted = await sink.submit("hubspot", body, transport="webhook")
            await submitted.acknowledged()
    finally:
        await e.close()
    assert submitted.records == [] and submitted.dead_letter is None
    [letter] = submitted.unenriched
    assert letter.reason == "enrichment_failed" and "503" in letter.detail
    assert letter.original.encode() == body


async def test_without_an_api_the_notification_is_dead_lettered_not_dropped(topics, parsers):  # noqa: F811
    async with RecordSink(topics) as sink:
        submitted = await sink.submit("hubspot", [MEETING_CREATED], transport="file")
    [letter] = submitted.unenriched
    assert letter.reason == "enrichment_failed"


async def test_missing_objects_fail_enrichment(api):  # noqa: F811
    e = enricher(api)
    try:
        with pytest.raises(EnrichmentFailed, match="404"):
            await e.complete("hubspot", MEETING_CREATED, e.request("hubspot", MEETING_CREATED))
    finally:
        await e.close()
