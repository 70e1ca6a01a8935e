"""Function URL configurations and HTTP API routes in SQL.

Both tables are declared on `corral.store.db.metadata`, so `Database` creates them (also
in a data directory made by an older Corral: `create_all` adds missing tables): import
this module before a `Database` is built. A function's URLs follow it through
`ON DELETE CASCADE`; routes name their function by reference, as API Gateway
integrations do, and outlive it.
"""

from __future__ import annotations

import orjson
from sqlalchemy import (
    Column,
    ForeignKey,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)

from corral.store.db import Database, metadata

function_urls = Table(
    "function_urls",
    metadata,
    Column("url_id", String(32), primary_key=True),
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), nullable=False),
    Column("qualifier", String(128), nullable=False),  # "" for the unqualified function
    Column("config", Text, nullable=False),
    UniqueConstraint("function_name", "qualifier"),
)

http_routes = Table(
    "http_routes",
    metadata,
    Column("route_id", String(16), primary_key=True),
    Column("route_key", String(512), nullable=False, unique=True),
    Column("config", Text, nullable=False),
)


class HttpTriggerStore:
    """Single-row statements on the shared engine, callable from the event loop."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine

    # ---- function URLs --------------------------------------------------------------

    def put_url(self, record: dict, create: bool) -> None:
        row = {
            "url_id": record["url_id"],
            "function_name": record["function_name"],
            "qualifier": record["qualifier"] or "",
            "config": orjson.dumps(record).decode(),
        }
        with self.engine.begin() as conn:
            if create:
                conn.execute(insert(function_urls).values(**row))
            else:
                conn.execute(
                    update(function_urls)
                    .where(function_urls.c.url_id == row["url_id"])
                    .values(config=row["config"])
                )

    def url_by_id(self, url_id: str) -> dict | None:
        query = select(function_urls.c.config).where(function_urls.c.url_id == url_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

    def url_for(self, function_name: str, qualifier: str | None) -> dict | None:
        query = select(function_urls.c.config).where(
            function_urls.c.function_name == function_name,
            function_urls.c.qualifier == (qualifier or ""),
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

    def list_urls(self, function_name: str, after: str | None, limit: int) -> list[dict]:
        """Ordered by qualifier ("" first: the unqualified URL); `after` is a qualifier."""
        t = function_urls
        query = select(t.c.config).where(t.c.function_name == function_name)
        if after is not None:
            query = query.where(t.c.qualifier > after)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.qualifier).limit(limit))
            return [orjson.loads(row[0]) for row in rows]

    def delete_url(self, url_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_urls).where(function_urls.c.url_id == url_id))

    # ---- routes -----------------------------------------------------------------------

    def put_route(self, record: dict) -> None:
        row = {
            "route_id": record["RouteId"],
            "route_key": record["RouteKey"],
            "config": orjson.dumps(record).decode(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(http_routes).values(**row))

    def list_routes(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(http_routes.c.config).order_by(http_routes.c.route_key))
            return [orjson.loads(row[0]) for row in rows]

    def delete_route(self, route_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(http_routes).where(http_routes.c.route_id == route_id))
