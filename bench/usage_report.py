"""Benchmark of cost and usage reports over a year of generated usage for 1,000 resources:
each report read from the daily rollups (what the API does) beside the same report cut
from the raw usage segments alone, in the same run; times and their ratio.

    uv run python -m bench.usage_report [--resources 1000] [--days 365] [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.cli import machine
from bench.servers import bench_database, postgres_version
from lariba.core import migrate
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.monitoring.usage import repository
from lariba.monitoring.usage.meters import prices
from lariba.monitoring.usage.repository import Dimension, ReportRow, Window
from lariba.providers.catalog import load_catalog

TARGET_SPEEDUP = 5.0

# One project's year: instances run three stretches a day, buckets change size four times
# a day, databases run all year with their storage, snapshots are kept for months.
GENERATE = """
WITH kinds AS (
    SELECT n, CASE WHEN n % 10 < 6 THEN 'instance' WHEN n % 10 < 8 THEN 'bucket'
                   WHEN n % 10 < 9 THEN 'database' ELSE 'database_snapshot' END AS kind
      FROM generate_series(1, :resources) n
)
INSERT INTO resources (id, project_id, kind, name, region, provider, spec, desired_state,
                       status, labels)
SELECT gen_random_uuid(), :project_id, kind, kind || '-' || n, 'local', 'local',
       jsonb_build_object('size', (ARRAY['nano', 'small', 'medium', 'large'])[1 + n % 4],
                          'storage_gb', 20 + n % 100),
       'deleted', 'deleted', jsonb_build_object('team', 'team-' || n % 7)
  FROM kinds
"""

SEGMENTS = """
INSERT INTO usage_segments (project_id, resource_id, resource_kind, meter, sku, quantity,
                            started_at, ended_at)
SELECT r.project_id, r.id, r.kind, m.meter, m.sku, m.quantity, m.b, m.e
  FROM resources r
  CROSS JOIN generate_series(0, :days - 1) d(day)
  CROSS JOIN LATERAL (
      SELECT 'instance' AS meter, r.spec->>'size' AS sku, 1::numeric AS quantity,
             :start + d.day * interval '1 day' + s.h * interval '8 hours'
                 + (hashtext(r.name) % 60) * interval '1 minute' AS b,
             :start + d.day * interval '1 day' + s.h * interval '8 hours'
                 + interval '6 hours' + (abs(hashtext(r.name)) % 60) * interval '1 minute' AS e
        FROM generate_series(0, 2) s(h) WHERE r.kind = 'instance'
      UNION ALL
      SELECT 'bucket_storage', 'bytes', (1 + q.k) * 1048576 * (1 + abs(hashtext(r.name)) % 500),
             :start + d.day * interval '1 day' + q.k * interval '6 hours',
             :start + d.day * interval '1 day' + (q.k + 1) * interval '6 hours'
        FROM generate_series(0, 3) q(k) WHERE r.kind = 'bucket'
      UNION ALL
      SELECT meter, sku, quantity, :start + d.day * interval '1 day',
             :start + (d.day + 1) * interval '1 day'
        FROM (VALUES ('database', r.spec->>'size', 1::numeric),
                     ('database_storage', 'gib', (r.spec->>'storage_gb')::numeric))
             v(meter, sku, quantity)
       WHERE r.kind = 'database' AND d.day % 7 = 0
      UNION ALL
      SELECT 'snapshot_storage', 'gib', (r.spec->>'storage_gb')::numeric,
             :start + d.day * interval '1 day', :start + (d.day + 1) * interval '1 day'
       WHERE r.kind = 'database_snapshot' AND d.day % 7 = 0
  ) m
 WHERE r.project_id = :project_id
"""


@dataclass(frozen=True)
class Case:
    name: str
    dimensions: list[Dimension]


CASES = [
    Case("cost by day", [Dimension.day]),
    Case("cost by resource", [Dimension.resource]),
    Case("usage by meter and size", [Dimension.meter]),
    Case("cost by day and resource kind", [Dimension.day, Dimension.resource_kind]),
]


def _say(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


async def _timed(run: Callable[[], Awaitable[list[ReportRow]]], repeat: int) -> tuple[float, Any]:
    times, rows = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = await run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def _totals(rows: list[ReportRow]) -> tuple[int, Any]:
    return len(rows), round(sum(r.cost_usd for r in rows), 6)


async def _analyze(engine: AsyncEngine, table: str) -> None:
    """Fresh statistics, as autovacuum would have them after a year of writes."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {table}"))


async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
    engine = create_engine(settings, url, pool_size=2)
    sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
    catalog_prices = prices(load_catalog("local"))
    project_id = uuid.uuid4()
    try:
        async with sessionmaker.begin() as session:
            now = (await session.scalar(text("SELECT now()"))).replace(microsecond=0)
            start = datetime.combine(
                now.date() - timedelta(days=args.days), datetime.min.time(), tzinfo=now.tzinfo
            )
            await session.execute(
                text("INSERT INTO projects (id, name) VALUES (:id, 'bench')"), {"id": project_id}
            )
            await session.execute(
                text(GENERATE), {"resources": args.resources, "project_id": project_id}
            )
            generated = time.perf_counter()
            await session.execute(
                text(SEGMENTS), {"days": args.days, "start": start, "project_id": project_id}
            )
            segments = await session.scalar(text("SELECT count(*) FROM usage_segments"))
        _say(f"{segments:,} usage segments in {time.perf_counter() - generated:.1f} s")
        await _analyze(engine, "usage_segments")
        started = time.perf_counter()
        batches = 0
        while True:
            async with sessionmaker.begin() as session:
                if await repository.roll_up_batch(session, now=now) is None:
                    break
            batches += 1
        rollup_seconds = time.perf_counter() - started
        await _analyze(engine, "usage_daily")
        async with sessionmaker() as session:
            watermark = await repository.rolled_through(session)
            daily = await session.scalar(text("SELECT count(*) FROM usage_daily"))
        _say(f"rolled up {daily:,} daily rows in {batches} batches, {rollup_seconds:.1f} s")

        window = Window(start=start, end=now, upto=now)
        results = []
        for case in CASES:

            async def report(rolled: date | None, case: Case = case) -> list[ReportRow]:
                async with sessionmaker() as session:
                    return await repository.report(
                        session,
                        project_id=project_id,
                        window=window,
                        rolled_through=rolled,
                        dimensions=case.dimensions,
                        prices=catalog_prices,
                        limit=1_000_000,
                    )

            rollup_time, from_rollups = await _timed(lambda: report(watermark), args.repeat)
            raw_time, from_segments = await _timed(lambda: report(None), max(1, args.repeat // 2))
            if _totals(from_rollups) != _totals(from_segments):
                raise SystemExit(
                    f"{case.name}: the rollups and the segments disagree: "
                    f"{_totals(from_rollups)} vs {_totals(from_segments)}"
                )
            results.append(
                {
                    "report": case.name,
                    "rows": len(from_rollups),
                    "total_usd": str(_totals(from_rollups)[1]),
                    "rollups_ms": round(rollup_time * 1000, 1),
                    "segments_only_ms": round(raw_time * 1000, 1),
                    "speedup": round(raw_time / rollup_time, 1),
                }
            )
        return {
            "machine": machine(),
            "postgres": postgres_version(url),
            "resources": args.resources,
            "days": args.days,
            "segments": segments,
            "daily_rows": daily,
            "rollup_seconds": round(rollup_seconds, 2),
            "reports": results,
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5, help="runs per report (median)")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: embedded)")
    parser.add_argument("--short", action="store_true", help="200 resources over 90 days")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.short:
        args.resources, args.days, args.repeat = 200, 90, 3
    with (
        tempfile.TemporaryDirectory(prefix="lariba-bench-usage-") as tmp,
        bench_database(args.database_url, Path(tmp)) as url,
    ):
        migrate.upgrade(url)
        results = asyncio.run(_run(url, args))
    print(
        f"usage reports over {results['days']} days of {results['resources']} resources "
        f"({results['segments']:,} segments, {results['daily_rows']:,} daily rollup rows, "
        f"rolled up in {results['rollup_seconds']} s):"
    )
    for row in results["reports"]:
        print(
            f"  {row['report']:<32} rollups {row['rollups_ms']:8.1f} ms   segments only "
            f"{row['segments_only_ms']:8.1f} ms   {row['speedup']:5.1f}x faster "
            f"(target >= {TARGET_SPEEDUP:.0f}x; {row['rows']} rows)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
