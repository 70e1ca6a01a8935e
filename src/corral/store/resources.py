"""What a function carries beside its configuration: tags, resource policies, reserved
concurrency; and the account-wide usage figures.

Tags live in the existing `functions.tags` column. Policies (one per function and
qualifier, statements as Lambda renders them) and reserved concurrency get their own
tables, declared on `corral.store.db.metadata` so that `Database` creates them: import
this module before a `Database` is built. Rows follow their function through
`ON DELETE CASCADE`. Only storage here; the rules are in `corral.control.resources`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from corral.store.db import Database, functions, metadata

function_policies = Table(
    "function_policies",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),  # "$LATEST" also for unqualified
    Column("revision_id", String(36), nullable=False),
    Column("statements", Text, nullable=False),  # JSON list, in the order they were added
)

function_concurrency = Table(
    "function_concurrency",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("reserved", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    revision_id: str
    statements: list[dict]


class ResourceStore:
    """Single-row statements on the shared engine; sub-millisecond on SQLite WAL, so
    callable from the event loop like `Database`'s own."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine

    # ---- tags -------------------------------------------------------------------

    def get_tags(self, name: str) -> dict[str, str]:
        return self.db.get_tags(name)

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(functions)
                .where(functions.c.name == name)
                .values(tags=orjson.dumps(tags).decode())
            )

    # ---- policies ---------------------------------------------------------------

    def get_policy(self, name: str, qualifier: str) -> StoredPolicy | None:
        query = select(function_policies.c.revision_id, function_policies.c.statements).where(
            function_policies.c.function_name == name,
            function_policies.c.qualifier == qualifier,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return StoredPolicy(row[0], orjson.loads(row[1])) if row else None

    def put_policy(self, name: str, qualifier: str, policy: StoredPolicy) -> None:
        """Replace the policy; an empty statement list deletes it."""
        key = (
            function_policies.c.function_name == name,
            function_policies.c.qualifier == qualifier,
        )
        with self.engine.begin() as conn:
            conn.execute(delete(function_policies).where(*key))
            if policy.statements:
                conn.execute(
                    insert(function_policies).values(
                        function_name=name,
                        qualifier=qualifier,
                        revision_id=policy.revision_id,
                        statements=orjson.dumps(policy.statements).decode(),
                    )
                )

    # ---- reserved concurrency -----------------------------------------------------

    def reserved(self) -> dict[str, int]:
        """Every function's reserved concurrency, by function name."""
        query = select(function_concurrency.c.function_name, function_concurrency.c.reserved)
        with self.engine.connect() as conn:
            return {name: int(value) for name, value in conn.execute(query)}

    def set_reserved(self, name: str, reserved: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(function_concurrency).where(function_concurrency.c.function_name == name)
            )
            conn.execute(insert(function_concurrency).values(function_name=name, reserved=reserved))

    def delete_reserved(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(function_concurrency).where(function_concurrency.c.function_name == name)
            )

    # ---- clean-up and usage -------------------------------------------------------

    def forget(self, name: str, qualifier: str | None = None) -> None:
        """Drop a function's policies and reserved concurrency, or one qualifier's policy."""
        with self.engine.begin() as conn:
            policies = delete(function_policies).where(function_policies.c.function_name == name)
            if qualifier is not None:
                conn.execute(policies.where(function_policies.c.qualifier == qualifier))
                return
            conn.execute(policies)
            conn.execute(
                delete(function_concurrency).where(function_concurrency.c.function_name == name)
            )

    def usage(self) -> tuple[int, int]:
        """(number of functions, total CodeSize of every stored version in bytes)."""
        with self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(functions)).scalar_one()
        return int(count), self.db.total_code_size()
