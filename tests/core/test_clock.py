from datetime import datetime, timedelta, timezone

from pipeline.clock import WatermarkClock

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
WALL = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


class Fake:
    def __init__(self) -> None:
        self.mono = 0.0

    def clock(self, idle: float = 10.0, lateness: float = 0.0) -> WatermarkClock:
        return WatermarkClock(idle, lateness, monotonic=lambda: self.mono, wall=lambda: WALL)


def test_follows_event_time_while_events_flow():
    f = Fake()
    c = f.clock()
    c.assign([0])
    c.observe(0, T0)
    c.observe(0, T0 - timedelta(hours=1))  # an older event does not move it back
    assert c.now() == T0


def test_minimum_over_owned_partitions_and_unknown_partition_blocks():
    f = Fake()
    c = f.clock()
    c.assign([0, 1])
    c.observe(0, T0)
    assert c.now() is None  # partition 1 has no reading and is not idle yet
    c.observe(1, T0 + timedelta(days=3))
    assert c.now() == T0


def test_idle_partition_falls_back_to_wall_clock():
    f = Fake()
    c = f.clock(idle=10)
    c.assign([0])
    c.observe(0, T0)
    f.mono = 9.9
    assert c.now() == T0
    f.mono = 10.0
    assert c.now() == WALL


def test_lateness_is_subtracted():
    f = Fake()
    c = f.clock(lateness=60)
    c.assign([0])
    c.observe(0, T0)
    assert c.now() == T0 - timedelta(seconds=60)


def test_never_ahead_of_wall_clock():
    f = Fake()
    c = f.clock()
    c.assign([0])
    c.observe(0, WALL + timedelta(days=1))  # a source with a skewed clock
    assert c.now() == WALL
