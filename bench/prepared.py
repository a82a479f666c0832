"""What turning off psycopg's server-side prepared statements (DATABASE_PGBOUNCER=true) costs.

The API's hottest reads, each run many times on one pooled connection through the app's own engine,
with psycopg's default (prepare from the 5th run) and with preparing off, interleaved round by round.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from sqlalchemy import select, text

from core.settings import Settings
from models.db import make_engine
from models.tables import Asset, Project

STATEMENTS = {
    "asset by id and owner": lambda: select(Asset).where(Asset.id == uuid.uuid4(), Asset.user_id == "u"),
    "projects of a user": lambda: (
        select(Project.id, Project.name)
        .where(Project.user_id == "u")
        .order_by(Project.updated_at.desc())
        .limit(50)
    ),
    "SELECT 1 (round trip floor)": lambda: text("SELECT 1"),
}


def per_query_us(engine, build, runs: int) -> float:
    with engine.connect() as connection:
        for _ in range(10):  # past the prepare threshold, so the default really prepares
            connection.execute(build()).all()
        started = time.perf_counter()
        for _ in range(runs):
            connection.execute(build()).all()
        return (time.perf_counter() - started) / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    engines = {
        "prepared (default)": make_engine(settings, pool_size=1, max_overflow=0),
        "never prepared (DATABASE_PGBOUNCER)": make_engine(
            settings.model_copy(update={"database_pgbouncer": True}), pool_size=1, max_overflow=0
        ),
    }
    print(f"{args.rounds} rounds x {args.runs} runs per statement; median µs per query")
    print(f"| statement | {' | '.join(engines)} | ratio |")
    print("|---|---|---|---|")
    for name, build in STATEMENTS.items():
        times: dict[str, list[float]] = {label: [] for label in engines}
        for round_number in range(args.rounds):
            order = list(engines.items())[:: 1 if round_number % 2 == 0 else -1]
            for label, engine in order:
                times[label].append(per_query_us(engine, build, args.runs))
        medians = [statistics.median(values) for values in times.values()]
        print(f"| {name} | {medians[0]:.0f} | {medians[1]:.0f} | {medians[1] / medians[0]:.2f} |")
    for engine in engines.values():
        engine.dispose()


if __name__ == "__main__":
    main()
