"""WriteBack: reads see pending writes, flush writes each key once with its last value."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.write_back import WriteBack


class CountingTable(dict[str, Any]):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def test_reads_see_pending_writes_and_the_table_is_untouched_until_flush():
    table = CountingTable({"a": 1, "b": 2})
    wb = WriteBack(table)
    wb["a"] = 10
    wb["c"] = 3
    del wb["b"]
    assert (wb["a"], wb.get("c"), "b" in wb, wb.get("b", "gone")) == (10, 3, False, "gone")
    with pytest.raises(KeyError):
        wb["b"]
    assert sorted(wb) == ["a", "c"] and len(wb) == 2
    assert table == {"a": 1, "b": 2} and table.writes == []


def test_flush_writes_each_key_once_with_its_last_value():
    table = CountingTable()
    wb = WriteBack(table)
    record: dict[str, Any] = {"ids": []}
    for i in range(5):
        record["ids"].append(i)
        wb["acct"] = record        # the identity step re-assigns a record it grows
        wb[f"id{i}"] = "acct"
    assert wb.flush() == 6
    assert table.writes.count("acct") == 1 and table["acct"] == {"ids": [0, 1, 2, 3, 4]}
    assert wb.flush() == 0


def test_discard_drops_pending_writes():
    table = CountingTable({"a": 1})
    wb = WriteBack(table)
    wb["a"] = 2
    wb.discard()
    assert wb["a"] == 1 and wb.flush() == 0 and table.writes == []
