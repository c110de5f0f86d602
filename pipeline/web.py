"""The worker's HTTP surface: /metrics, /healthz, /readyz, and the read-model API.

Metrics extend Faust's own Prometheus sensor (same registry, ``lifecycle_faust_``
prefix) with consumer lag per topic-partition, instead of duplicating it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp.web import Response
from faust import web
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import metrics

if TYPE_CHECKING:
    from pipeline.app import LifecyclePipeline

_faust_metrics: FaustMetrics | None = None


class LifecycleMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor plus ``lifecycle_consumer_lag{topic,partition}``.

    Per-key table get/set/del counters are left out: the accounts agent reads and writes
    every account of every batch, so those two label lookups cost more than the
    state machine; table sizes are exported as ``lifecycle_table_keys``."""

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._end: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        for tp, offset in tp_offsets.items():
            self._committed[tp] = offset
            self._update_lag(tp)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        super().track_tp_end_offset(tp, offset)
        self._end[tp] = offset
        self._update_lag(tp)

    def _update_lag(self, tp: TP) -> None:
        end = self._end.get(tp)
        if end is not None:
            lag = max(0, end - self._committed.get(tp, 0))
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)


def is_ready(pipeline: LifecyclePipeline) -> bool:
    """Ready only once table recovery finished, no rebalance is in progress and no agent died."""
    if pipeline.failed is not None:
        return False
    app = pipeline.app
    try:
        recovered = app.tables.recovery.completed.is_set()
    except AttributeError:  # tables not started yet
        return False
    return bool(recovered and not app.rebalancing and pipeline.started)


def owned(tps: Any) -> dict[str, list[int]]:
    """Topic partitions as topic → sorted partitions (what /assignment shows)."""
    out: dict[str, list[int]] = {}
    for tp in tps:
        out.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(parts) for topic, parts in sorted(out.items())}


def install(pipeline: LifecyclePipeline) -> None:
    global _faust_metrics
    app = pipeline.app
    if _faust_metrics is None:
        _faust_metrics = FaustMetrics.create(metrics.REGISTRY, "lifecycle_faust")
    app.monitor = LifecycleMonitor(metrics=_faust_metrics)
    metrics.note_compiled()

    @app.page("/metrics")
    async def metrics_page(self: web.View, request: web.Request) -> web.Response:
        metrics.WORKER_READY.set(1 if is_ready(pipeline) else 0)
        return Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok"})

    @app.page("/assignment")
    async def assignment_page(self: web.View, request: web.Request) -> web.Response:
        """The partitions this worker owns (active) and keeps warm (standby), topic → partitions."""
        return self.json({"active": owned(app.assignor.assigned_actives()),
                          "standby": owned(app.assignor.assigned_standbys())})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        ready = is_ready(pipeline)
        return self.json({"ready": ready}, status=200 if ready else 503)
