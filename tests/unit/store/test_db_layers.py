import orjson
from sqlalchemy import select, update

from corral.store.db import SCHEMA_VERSION, Database, function_layers, function_versions, meta


def _record(name: str, version: str, layers: list[dict]) -> dict:
    return {
        "name": name,
        "version": version,
        "code_hexdigest": "c" * 64,
        "code_size": 1,
        "layers": layers,
    }


LAYER = {"arn": "arn:aws:lambda:us-east-1:000000000000:layer:l:1", "code_size": 5,
         "code_hexdigest": "a" * 64, "unzipped_size": 9}  # fmt: skip


def test_layer_packages_count_as_in_use_while_a_version_holds_them(tmp_path):
    db = Database.sqlite(tmp_path / "c.db")
    db.insert_function(_record("f", "$LATEST", [LAYER]), {})
    db.insert_version(_record("f", "1", [LAYER]))

    assert db.code_in_use("a" * 64)
    db.update_function(_record("f", "$LATEST", []))
    assert db.code_in_use("a" * 64)  # version 1 still holds it
    assert db.layer_digests("f") == {"a" * 64}
    db.delete_function("f")
    assert not db.code_in_use("a" * 64)


def test_schema_2_is_migrated_and_existing_layers_recorded(tmp_path):
    path = tmp_path / "c.db"
    db = Database.sqlite(path)
    db.insert_function(_record("f", "$LATEST", []), {})
    with db.engine.begin() as conn:
        # as a version-2 server left it: a stored config naming a layer, no reference rows
        config = orjson.dumps(_record("f", "$LATEST", [LAYER])).decode()
        conn.execute(update(function_versions).values(config=config))
        conn.execute(update(meta).values(value="2"))
    db.close()

    db = Database.sqlite(path)
    with db.engine.connect() as conn:
        assert conn.execute(select(meta.c.value)).scalar_one() == str(SCHEMA_VERSION)
        rows = conn.execute(select(function_layers.c.code_hexdigest)).all()
    assert rows == [("a" * 64,)]
