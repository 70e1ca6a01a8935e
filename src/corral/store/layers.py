"""Layer versions and their policies in SQL (the tables are declared in `corral.store.db`).

Only storage here; Lambda's rules are in `corral.control.layers`. Single-row statements
and small indexed scans on the shared engine, callable from the event loop like
`Database`'s own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import orjson
from sqlalchemy import delete, insert, select, update

from corral.model.layers import LayerPolicy, LayerVersion
from corral.store.db import Database, layer_version_policies, layer_versions, layers

# Rows fetched per round trip when a listing filters in Python.
_BATCH = 200


def _to_json(version: LayerVersion) -> str:
    return orjson.dumps(dataclasses.asdict(version)).decode()


def _from_json(text: str) -> LayerVersion:
    record = orjson.loads(text)
    record["compatible_runtimes"] = tuple(record.get("compatible_runtimes") or ())
    record["compatible_architectures"] = tuple(record.get("compatible_architectures") or ())
    return LayerVersion(**record)


class LayerStore:
    def __init__(self, db: Database) -> None:
        self.engine = db.engine

    def next_version(self, name: str) -> int:
        """Hand out the layer's next version number (1, 2, ...; never reused, also after
        every version was deleted)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(layers)
                .where(layers.c.name == name)
                .values(last_version=layers.c.last_version + 1)
            )
            if done.rowcount == 0:
                conn.execute(insert(layers).values(name=name, last_version=1))
                return 1
            row = conn.execute(select(layers.c.last_version).where(layers.c.name == name))
            return int(row.scalar_one())

    def insert_version(self, version: LayerVersion) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(layer_versions).values(
                    layer_name=version.name,
                    version=version.version,
                    code_hexdigest=version.code_hexdigest,
                    code_size=version.code_size,
                    config=_to_json(version),
                )
            )

    def get_version(self, name: str, version: int) -> LayerVersion | None:
        query = select(layer_versions.c.config).where(
            layer_versions.c.layer_name == name, layer_versions.c.version == version
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _from_json(row[0]) if row else None

    def versions(self, name: str, below: int | None = None) -> Iterator[LayerVersion]:
        """The layer's versions, newest first, numbered below `below` if given."""
        while True:
            query = select(layer_versions.c.config, layer_versions.c.version).where(
                layer_versions.c.layer_name == name
            )
            if below is not None:
                query = query.where(layer_versions.c.version < below)
            query = query.order_by(layer_versions.c.version.desc()).limit(_BATCH)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _from_json(row[0])
            if len(rows) < _BATCH:
                return
            below = rows[-1][1]

    def all_versions(self, after_name: str | None = None) -> Iterator[LayerVersion]:
        """Every version of every layer named after `after_name`: by name, newest first."""
        position: tuple[str, int] | None = None
        while True:
            t = layer_versions
            query = select(t.c.config, t.c.layer_name, t.c.version)
            if position is not None:
                name, version = position
                query = query.where(
                    (t.c.layer_name > name) | ((t.c.layer_name == name) & (t.c.version < version))
                )
            elif after_name is not None:
                query = query.where(t.c.layer_name > after_name)
            query = query.order_by(t.c.layer_name, t.c.version.desc()).limit(_BATCH)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _from_json(row[0])
            if len(rows) < _BATCH:
                return
            position = (rows[-1][1], rows[-1][2])

    def delete_version(self, name: str, version: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(layer_version_policies).where(
                    layer_version_policies.c.layer_name == name,
                    layer_version_policies.c.version == version,
                )
            )
            conn.execute(
                delete(layer_versions).where(
                    layer_versions.c.layer_name == name, layer_versions.c.version == version
                )
            )

    def get_policy(self, name: str, version: int) -> LayerPolicy | None:
        t = layer_version_policies
        query = select(t.c.revision_id, t.c.statements).where(
            t.c.layer_name == name, t.c.version == version
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return LayerPolicy(row[0], orjson.loads(row[1])) if row else None

    def put_policy(self, name: str, version: int, policy: LayerPolicy) -> None:
        t = layer_version_policies
        values = {"revision_id": policy.revision_id, "statements": orjson.dumps(policy.statements)}
        values["statements"] = values["statements"].decode()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t).where(t.c.layer_name == name, t.c.version == version).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(t).values(layer_name=name, version=version, **values))
