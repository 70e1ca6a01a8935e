"""Function metadata in SQL (SQLAlchemy 2 Core): SQLite under the data dir by default.

Tables: `functions` (one row per function: tags, creation time, the last version number
handed out), `function_versions` (one row per version, `$LATEST` included) and `aliases`,
each holding its configuration as JSON; `layers` (one row per layer name: the last version
number handed out), `layer_versions`, `layer_version_policies`, and `function_layers` (which
layer packages each function version holds, so that a package is kept while any version
uses it, also after its layer version is deleted). The schema is created on start-up and
migrated forward by `_migrate` from the `meta.schema_version` row.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

SCHEMA_VERSION = 3

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

functions = Table(
    "functions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("last_version", Integer, nullable=False, default=0),  # never reused, as in Lambda
)

function_versions = Table(
    "function_versions",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("version", String(16), primary_key=True),
    Column("code_hexdigest", String(64), nullable=False, index=True),
    Column("code_size", Integer, nullable=False),
    Column("config", Text, nullable=False),
)


aliases = Table(
    "aliases",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("config", Text, nullable=False),
)


provisioned_concurrency = Table(
    "provisioned_concurrency",
    metadata,
    Column("function_name", ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("last_modified", String(32), nullable=False),
)


layers = Table(
    "layers",
    metadata,
    Column("name", String(140), primary_key=True),
    Column("last_version", Integer, nullable=False, default=0),  # never reused, as in Lambda
)

layer_versions = Table(
    "layer_versions",
    metadata,
    Column("layer_name", ForeignKey("layers.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("code_hexdigest", String(64), nullable=False, index=True),
    Column("code_size", Integer, nullable=False),
    Column("config", Text, nullable=False),  # the LayerVersion as JSON
)

layer_version_policies = Table(
    "layer_version_policies",
    metadata,
    Column("layer_name", String(140), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("revision_id", String(36), nullable=False),
    Column("statements", Text, nullable=False),  # JSON list, in the order they were added
    ForeignKeyConstraint(
        ["layer_name", "version"],
        ["layer_versions.layer_name", "layer_versions.version"],
        ondelete="CASCADE",
    ),
)

function_layers = Table(
    "function_layers",
    metadata,
    Column("function_name", String(64), primary_key=True),
    Column("version", String(16), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("code_hexdigest", String(64), nullable=False, index=True),
    ForeignKeyConstraint(
        ["function_name", "version"],
        ["function_versions.function_name", "function_versions.version"],
        ondelete="CASCADE",
    ),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _migrate(conn, from_version: int) -> None:
    if from_version < 2:
        conn.exec_driver_sql(
            "ALTER TABLE functions ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0"
        )
    if from_version < 3:
        # The layer tables are new (create_all made them); record the layers that stored
        # configurations already name, so that their packages count as in use.
        for row in conn.execute(select(function_versions.c.config)):
            _write_layer_refs(conn, orjson.loads(row[0]))
    conn.execute(
        update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
    )


def _write_layer_refs(conn, record: dict) -> None:
    """Replace the function_layers rows of one function version by its record's layers."""
    conn.execute(
        delete(function_layers)
        .where(function_layers.c.function_name == record["name"])
        .where(function_layers.c.version == record["version"])
    )
    rows = [
        {
            "function_name": record["name"],
            "version": record["version"],
            "position": position,
            "code_hexdigest": layer["code_hexdigest"],
        }
        for position, layer in enumerate(record.get("layers") or ())
        if isinstance(layer, dict) and layer.get("code_hexdigest")
    ]
    if rows:
        conn.execute(insert(function_layers), rows)


class Database:
    """Synchronous, small, indexed statements; safe to call from the event loop for
    single-row work (sub-millisecond on SQLite WAL)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            found = row.first()
            if found is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found[0]) < SCHEMA_VERSION:
                _migrate(conn, int(found[0]))

    @classmethod
    def sqlite(cls, path: Path) -> Database:
        return cls(f"sqlite:///{path}")

    def insert_function(self, record: dict, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(functions).values(
                    name=record["name"], created_at=time.time(), tags=orjson.dumps(tags).decode()
                )
            )
            conn.execute(insert(function_versions).values(**self._version_row(record)))
            _write_layer_refs(conn, record)

    def update_function(self, record: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(function_versions)
                .where(function_versions.c.function_name == record["name"])
                .where(function_versions.c.version == record["version"])
                .values(**self._version_row(record))
            )
            _write_layer_refs(conn, record)

    @staticmethod
    def _version_row(record: dict) -> dict:
        return {
            "function_name": record["name"],
            "version": record["version"],
            "code_hexdigest": record["code_hexdigest"],
            "code_size": record["code_size"],
            "config": orjson.dumps(record).decode(),
        }

    def get_function(self, name: str, version: str = "$LATEST") -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(function_versions.c.config)
                .where(function_versions.c.function_name == name)
                .where(function_versions.c.version == version)
            ).first()
        return orjson.loads(row[0]) if row else None

    def insert_version(self, record: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(function_versions).values(**self._version_row(record)))
            _write_layer_refs(conn, record)

    def next_version(self, name: str) -> int:
        """Hand out the function's next version number (1, 2, ...; never reused)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(functions)
                .where(functions.c.name == name)
                .values(last_version=functions.c.last_version + 1)
            )
            row = conn.execute(select(functions.c.last_version).where(functions.c.name == name))
            return int(row.scalar_one())

    def list_versions(self, name: str, after: int, limit: int) -> list[dict]:
        """Published versions (not $LATEST) in ascending order, numbered above `after`."""
        numbered = function_versions.c.version != "$LATEST"
        query = (
            select(function_versions.c.config)
            .where(function_versions.c.function_name == name)
            .where(numbered)
            .where(cast(function_versions.c.version, Integer) > after)
            .order_by(cast(function_versions.c.version, Integer))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [orjson.loads(row[0]) for row in conn.execute(query)]

    def latest_published(self, name: str) -> dict | None:
        query = (
            select(function_versions.c.config)
            .where(function_versions.c.function_name == name)
            .where(function_versions.c.version != "$LATEST")
            .order_by(cast(function_versions.c.version, Integer).desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

    def delete_version(self, name: str, version: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(function_layers)
                .where(function_layers.c.function_name == name)
                .where(function_layers.c.version == version)
            )
            conn.execute(
                delete(function_versions)
                .where(function_versions.c.function_name == name)
                .where(function_versions.c.version == version)
            )

    def put_alias(self, record: dict, create: bool) -> None:
        row = {
            "function_name": record["function_name"],
            "name": record["name"],
            "config": orjson.dumps(record).decode(),
        }
        with self.engine.begin() as conn:
            if create:
                conn.execute(insert(aliases).values(**row))
            else:
                conn.execute(
                    update(aliases)
                    .where(aliases.c.function_name == row["function_name"])
                    .where(aliases.c.name == row["name"])
                    .values(config=row["config"])
                )

    def get_alias(self, function_name: str, name: str) -> dict | None:
        query = select(aliases.c.config).where(
            aliases.c.function_name == function_name, aliases.c.name == name
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return orjson.loads(row[0]) if row else None

    def list_aliases(self, function_name: str, after: str | None, limit: int) -> list[dict]:
        query = select(aliases.c.config).where(aliases.c.function_name == function_name)
        if after:
            query = query.where(aliases.c.name > after)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(aliases.c.name).limit(limit))
            return [orjson.loads(row[0]) for row in rows]

    def delete_alias(self, function_name: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(aliases).where(
                    aliases.c.function_name == function_name, aliases.c.name == name
                )
            )

    def put_provisioned(self, name: str, qualifier: str, requested: int, stamp: str) -> None:
        row = {"requested": requested, "last_modified": stamp}
        with self.engine.begin() as conn:
            done = conn.execute(
                update(provisioned_concurrency)
                .where(provisioned_concurrency.c.function_name == name)
                .where(provisioned_concurrency.c.qualifier == qualifier)
                .values(**row)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(provisioned_concurrency).values(
                        function_name=name, qualifier=qualifier, **row
                    )
                )

    def list_provisioned(self, name: str | None = None) -> list[tuple[str, str, int, str]]:
        """(function, qualifier, requested, last modified), by function then qualifier."""
        t = provisioned_concurrency
        query = select(t.c.function_name, t.c.qualifier, t.c.requested, t.c.last_modified)
        if name is not None:
            query = query.where(t.c.function_name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.function_name, t.c.qualifier))
            return [tuple(row) for row in rows]

    def delete_provisioned(self, name: str, qualifier: str | None = None) -> None:
        t = provisioned_concurrency
        query = delete(t).where(t.c.function_name == name)
        if qualifier is not None:
            query = query.where(t.c.qualifier == qualifier)
        with self.engine.begin() as conn:
            conn.execute(query)

    def total_code_size(self) -> int:
        """CodeSize summed over every stored version of every function and every layer
        version (Lambda's code storage usage: deployment packages and layer archives)."""
        functions_size = select(func.coalesce(func.sum(function_versions.c.code_size), 0))
        layers_size = select(func.coalesce(func.sum(layer_versions.c.code_size), 0))
        with self.engine.connect() as conn:
            return int(conn.execute(functions_size).scalar_one()) + int(
                conn.execute(layers_size).scalar_one()
            )

    def get_tags(self, name: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            row = conn.execute(select(functions.c.tags).where(functions.c.name == name)).first()
        return orjson.loads(row[0]) if row else {}

    def list_functions(self, after: str | None, limit: int) -> list[dict]:
        """Up to `limit` $LATEST configurations ordered by name, starting after `after`."""
        query = select(function_versions.c.config).where(function_versions.c.version == "$LATEST")
        if after:
            query = query.where(function_versions.c.function_name > after)
        query = query.order_by(function_versions.c.function_name).limit(limit)
        with self.engine.connect() as conn:
            return [orjson.loads(row[0]) for row in conn.execute(query)]

    def delete_function(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(aliases).where(aliases.c.function_name == name))
            conn.execute(delete(function_layers).where(function_layers.c.function_name == name))
            conn.execute(delete(function_versions).where(function_versions.c.function_name == name))
            conn.execute(delete(functions).where(functions.c.name == name))

    def code_in_use(self, hexdigest: str) -> bool:
        """Whether a function version's code, a layer version, or a function version's
        copy of a (maybe deleted) layer version is this package."""
        queries = (
            select(function_versions.c.function_name).where(
                function_versions.c.code_hexdigest == hexdigest
            ),
            select(layer_versions.c.layer_name).where(layer_versions.c.code_hexdigest == hexdigest),
            select(function_layers.c.function_name).where(
                function_layers.c.code_hexdigest == hexdigest
            ),
        )
        with self.engine.connect() as conn:
            return any(conn.execute(q.limit(1)).first() is not None for q in queries)

    def layer_digests(self, name: str) -> set[str]:
        """The layer packages any version of the function holds."""
        query = select(function_layers.c.code_hexdigest).where(
            function_layers.c.function_name == name
        )
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}

    def layer_sets_in_use(self) -> list[list[dict]]:
        """The layers of every function version that has any (for pruning merged trees)."""
        query = select(function_versions.c.config).where(
            function_versions.c.function_name.in_(select(function_layers.c.function_name))
        )
        with self.engine.connect() as conn:
            records = [orjson.loads(row[0]) for row in conn.execute(query)]
        return [r["layers"] for r in records if r.get("layers")]

    def close(self) -> None:
        self.engine.dispose()
