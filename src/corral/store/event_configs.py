"""Asynchronous invocation configurations (PutFunctionEventInvokeConfig) in SQL: one row per
(function, qualifier), the configuration as JSON in Lambda's wire names."""

from __future__ import annotations

import orjson
from sqlalchemy import Column, ForeignKey, String, Table, Text, delete, insert, select, update

from corral.store.db import Database, metadata

event_invoke_configs = Table(
    "event_invoke_configs",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("config", Text, nullable=False),
)
_T = event_invoke_configs


class EventConfigStore:
    def __init__(self, db: Database) -> None:
        self.engine = db.engine

    def load(self, name: str, qualifier: str) -> dict | None:
        query = select(_T.c.config).where(_T.c.function_name == name, _T.c.qualifier == qualifier)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

    def save(self, name: str, qualifier: str, record: dict, create: bool) -> None:
        config = orjson.dumps(record)
        with self.engine.begin() as conn:
            if create:
                conn.execute(
                    insert(_T).values(function_name=name, qualifier=qualifier, config=config)
                )
            else:
                conn.execute(
                    update(_T)
                    .where(_T.c.function_name == name, _T.c.qualifier == qualifier)
                    .values(config=config)
                )

    def delete(self, name: str, qualifier: str | None = None) -> None:
        """One qualifier's configuration, or all of the function's."""
        query = delete(_T).where(_T.c.function_name == name)
        if qualifier is not None:
            query = query.where(_T.c.qualifier == qualifier)
        with self.engine.begin() as conn:
            conn.execute(query)

    def list(self, name: str, after: str | None, limit: int) -> list[tuple[str, dict]]:
        query = select(_T.c.qualifier, _T.c.config).where(_T.c.function_name == name)
        if after:
            query = query.where(_T.c.qualifier > after)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(_T.c.qualifier).limit(limit))
            return [(qualifier, orjson.loads(config)) for qualifier, config in rows]
