"""Changelog records name their input; recovery keeps only those of committed input."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from pipeline.tables import OFF_HEADER, SRC_HEADER, _committed, _source

ACCOUNTS = TP("lifecycle.account-events", 1)


def record(headers) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(headers=headers))


def stamped(offset: int, as_dict: bool = False) -> SimpleNamespace:
    headers = [(SRC_HEADER, b"lifecycle.account-events|1"), (OFF_HEADER, str(offset).encode())]
    return record(dict(headers) if as_dict else headers)


def test_the_source_is_read_from_either_header_shape() -> None:
    assert _source(stamped(41)) == (ACCOUNTS, 41)
    assert _source(stamped(41, as_dict=True)) == (ACCOUNTS, 41)
    assert _source(record(None)) is None


def test_a_write_is_kept_only_if_its_input_was_committed() -> None:
    committed = {ACCOUNTS: 42}  # offsets 0..41 are done; 42 will be processed again
    assert _committed(_source(stamped(41)), committed)
    assert not _committed(_source(stamped(42)), committed)
    assert not _committed(_source(stamped(5)), {})  # nothing committed yet: everything replays
    assert _committed(_source(record([])), committed)  # unstamped (older) records are kept
