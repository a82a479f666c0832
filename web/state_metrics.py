"""Gauges computed at scrape time from the database and the broker, cached briefly per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import redis
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core import taskqueue
from models.stats import asset_counts_by_status, storage_bytes_by_tier
from web.services import Services

log = structlog.get_logger(__name__)


class StateCollector(Collector):
    """Queue depths, assets by status and stored bytes by tier; a failing source reports `up` 0."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Scrapes from several Prometheus servers (or a refreshing dashboard) must not each hit Postgres.
        with self._lock:
            ttl = self._services.settings.metrics_cache_seconds
            if self._cached is None or time.monotonic() - self._cached[0] >= ttl:
                self._cached = (time.monotonic(), self._measure())
            yield from self._cached[1]

    def _measure(self) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily("iskra_state_source_up", "Whether a gauge source answered", labels=["source"])
        families = [up]
        for source, measure in (("database", self._database), ("broker", self._broker)):
            try:
                families.extend(measure())
                up.add_metric([source], 1)
            except Exception as error:
                log.warning("metrics_source_failed", source=source, error_type=type(error).__name__)
                up.add_metric([source], 0)
        return families

    def _database(self) -> list[GaugeMetricFamily]:
        with self._services.sessions() as session:
            statuses = asset_counts_by_status(session)
            tiers = storage_bytes_by_tier(session)
        assets = GaugeMetricFamily("iskra_assets", "Assets by status", labels=["status"])
        for status, count in statuses.items():
            assets.add_metric([status], count)
        stored = GaugeMetricFamily(
            "iskra_storage_used_bytes", "Bytes counted against users' quotas, by tier", labels=["tier"]
        )
        for tier, total in tiers.items():
            stored.add_metric([tier], total)
        return [assets, stored]

    def _broker(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "iskra_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for queue, depth in self._queue_depths().items():
            family.add_metric([queue], depth)
        return [family]

    def _queue_depths(self) -> dict[str, int]:
        settings = self._services.settings
        if taskqueue.uses_amqp(settings.broker_url):
            # One short connection per measurement (at most one per cache period): passive declares.
            connection = taskqueue.broker_connection(self._services.celery)
            try:
                return taskqueue.amqp_queue_depths(connection)
            finally:
                connection.release()
        return taskqueue.queue_depths(self._redis_broker, settings.redis_key_prefix)

    @cached_property
    def _redis_broker(self) -> Any:
        settings = self._services.settings
        if settings.broker_url == settings.redis_url:
            return self._services.redis
        return redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
