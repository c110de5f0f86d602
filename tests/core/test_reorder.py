from datetime import datetime, timedelta, timezone

from pipeline.core.reorder import ReorderBuffer

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def d(n: float) -> datetime:
    return T0 + timedelta(days=n)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def buffer(clock: Clock, idle: float = 2.0, **kw) -> ReorderBuffer[str]:
    return ReorderBuffer(["crm", "billing"], idle, monotonic=clock, **kw)


def test_holds_until_every_active_source_has_caught_up():
    c = Clock()
    b = buffer(c)
    b.push("crm", d(1), "crm-1")
    b.push("crm", d(40), "crm-40")
    assert b.pop_ready() == []  # billing has shown nothing yet
    b.push("billing", d(10), "bill-10")
    assert b.pop_ready() == ["crm-1", "bill-10"]
    b.push("billing", d(50), "bill-50")
    assert b.pop_ready() == ["crm-40"]
    assert len(b) == 1


def test_a_chunked_backfill_comes_out_in_event_time_order():
    c = Clock()
    b = buffer(c)
    out: list[str] = []
    # months of CRM arrive first, then months of billing: the fetch order of a backfill
    for n in range(0, 100, 10):
        b.push("crm", d(n), f"c{n}")
        out += b.pop_ready()
    for n in range(5, 105, 10):
        b.push("billing", d(n), f"b{n}")
        out += b.pop_ready()
    c.t = 10  # both quiet now: the rest drains
    out += b.pop_ready()
    times = [int(x[1:]) for x in out]
    assert times == sorted(times) and len(out) == 20


def test_a_quiet_source_stops_holding_others_back():
    c = Clock()
    b = buffer(c, idle=2.0)
    b.push("crm", d(1), "a")
    assert b.pop_ready() == []
    c.t = 1.9
    assert b.pop_ready() == []
    c.t = 2.0  # billing never spoke: idle since start
    assert b.pop_ready() == ["a"]


def test_full_buffer_releases_oldest():
    c = Clock()
    b = buffer(c, max_items=3)
    for n in range(5):
        b.push("crm", d(n), f"e{n}")
    assert b.pop_ready() == ["e0", "e1"]
    assert len(b) == 3


def test_unknown_source_joins():
    c = Clock()
    b = buffer(c)
    b.push("support", d(3), "s")
    b.push("crm", d(4), "c")
    b.push("billing", d(5), "b")
    assert b.pop_ready() == ["s"]
