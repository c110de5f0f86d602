"""/readyz tells an orchestrator the truth: not ready until table recovery finished."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pipeline.web import is_ready


def fake_pipeline(recovered: bool, rebalancing: bool, started: bool = True, failed: BaseException | None = None):
    completed = asyncio.Event()
    if recovered:
        completed.set()
    app = SimpleNamespace(tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
                          rebalancing=rebalancing)
    return SimpleNamespace(app=app, started=started, failed=failed)


def test_ready_only_after_recovery_and_outside_rebalance():
    assert not is_ready(fake_pipeline(recovered=False, rebalancing=False))
    assert not is_ready(fake_pipeline(recovered=True, rebalancing=True))
    assert not is_ready(fake_pipeline(recovered=True, rebalancing=False, started=False))
    assert is_ready(fake_pipeline(recovered=True, rebalancing=False))
    assert not is_ready(fake_pipeline(recovered=True, rebalancing=False, failed=KeyError("agent died")))


def test_not_ready_before_tables_exist():
    assert not is_ready(SimpleNamespace(app=SimpleNamespace(rebalancing=False), started=True, failed=None))
