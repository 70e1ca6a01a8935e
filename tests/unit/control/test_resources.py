"""ResourceService against a real SQLite database, with functions faked by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from corral.control.resources import Permission, ResourceService
from corral.model.arn import Scope
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.model.tags import validate_tags
from corral.store.db import Database
from corral.store.resources import ResourceStore

SCOPE = Scope()


class FakeFunctions:
    """`get` and `primary` over rows in the real `functions` table (the foreign keys need
    them); only $LATEST and version "1" exist."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str) -> None:
        record = {"name": name, "version": "$LATEST", "code_hexdigest": "0" * 64, "code_size": 10}
        self.db.insert_function(record, {})

    def get(self, name: str):
        if self.db.get_function(name) is None:
            raise ResourceNotFoundException(f"Function not found: {SCOPE.function_arn(name)}")
        return SimpleNamespace(revision_id=f"rev-{name}")

    def primary(self, name: str, qualifier: str | None):
        config = self.get(name)
        if qualifier not in (None, "$LATEST", "1"):
            raise ResourceNotFoundException("Function not found")
        return config


@pytest.fixture
def db(tmp_path):
    database = Database.sqlite(tmp_path / "corral.db")
    yield database
    database.close()


@pytest.fixture
def functions(db):
    fake = FakeFunctions(db)
    for name in ("f", "g"):
        fake.add(name)
    return fake


def _service(db: Database, functions: FakeFunctions, limit: int = 1000) -> ResourceService:
    return ResourceService(ResourceStore(db), functions, functions, SCOPE, limit)


def test_reservations_are_cached_and_leave_the_unreserved_pool(db, functions):
    service = _service(db, functions)

    service.put_reserved_concurrency("f", None, 30)
    service.put_reserved_concurrency("g", None, 0)

    assert service.reserved_concurrency("f") == 30
    assert service.reserved_concurrency("g") == 0
    assert service.reserved_concurrency("other") is None
    assert service.unreserved_limit() == 970
    service.delete_reserved_concurrency("f", None)
    assert service.reserved_concurrency("f") is None
    assert service.unreserved_limit() == 1000


def test_a_new_service_reads_reservations_from_the_database(db, functions):
    _service(db, functions).put_reserved_concurrency("f", None, 12)

    again = _service(db, functions)

    assert again.reserved_concurrency("f") == 12
    assert again.unreserved_limit() == 988


def test_the_unreserved_floor_is_100_or_the_whole_limit_when_smaller(db, functions):
    service = _service(db, functions, limit=120)
    with pytest.raises(InvalidParameterValueException, match=r"minimum value of \[100\]\.$"):
        service.put_reserved_concurrency("f", None, 21)
    assert service.put_reserved_concurrency("f", None, 20) == 20

    small = _service(db, functions, limit=10)
    with pytest.raises(InvalidParameterValueException, match=r"minimum value of \[10\]\.$"):
        small.put_reserved_concurrency("g", None, 1)


def test_forget_drops_the_reservation_and_every_policy(db, functions):
    service = _service(db, functions)
    service.put_reserved_concurrency("f", None, 5)
    service.add_permission("f", None, Permission("a", "lambda:*", "*"))
    service.add_permission("f", "1", Permission("b", "lambda:*", "*"))

    service.forget("f", "1")
    with pytest.raises(ResourceNotFoundException):
        service.get_policy("f", "1")
    assert service.get_policy("f", None).document["Statement"][0]["Sid"] == "a"

    service.forget("f")
    assert service.reserved_concurrency("f") is None
    assert service.unreserved_limit() == 1000
    with pytest.raises(ResourceNotFoundException):
        service.get_policy("f", None)


def test_rows_follow_a_deleted_function(db, functions):
    service = _service(db, functions)
    service.put_reserved_concurrency("f", None, 5)
    service.add_permission("f", None, Permission("a", "lambda:*", "*"))

    db.delete_function("f")
    functions.add("f")

    assert service.get_reserved_concurrency("f", None) is None
    with pytest.raises(ResourceNotFoundException):
        service.get_policy("f", None)


def test_statement_conditions_for_every_member(db, functions):
    service = _service(db, functions)
    permission = Permission(
        statement_id="all",
        action="lambda:InvokeFunction",
        principal="alexa-appkit.amazon.com",
        source_arn="arn:aws:sns:us-east-1:000000000000:t",
        source_account="000000000000",
        principal_org_id="o-abcdefghij",
        event_source_token="token",
        function_url_auth_type="AWS_IAM",
        invoked_via_function_url=True,
    )

    statement = service.add_permission("f", None, permission)

    assert list(statement) == ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"]
    assert statement["Principal"] == {"Service": "alexa-appkit.amazon.com"}
    assert statement["Condition"] == {
        "StringEquals": {
            "lambda:FunctionUrlAuthType": "AWS_IAM",
            "aws:PrincipalOrgID": "o-abcdefghij",
            "AWS:SourceAccount": "000000000000",
            "lambda:EventSourceToken": "token",
        },
        "ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:000000000000:t"},
        "Bool": {"lambda:InvokedViaFunctionUrl": "true"},
    }


def test_account_settings_count_functions_and_code(db, functions):
    service = _service(db, functions)
    service.put_reserved_concurrency("g", None, 100)

    settings = service.account_settings()

    assert settings.function_count == 2
    assert settings.total_code_size_bytes == 20
    assert settings.unreserved_concurrent_executions == 900


@pytest.mark.parametrize(
    "tags",
    [{"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}, {"AWS:x": "v"}],
    ids=["empty-key", "long-key", "long-value", "aws-prefix"],
)
def test_validate_tags_refuses_what_lambda_refuses(tags):
    with pytest.raises(InvalidParameterValueException):
        validate_tags(tags)


def test_validate_tags_counts_existing_keys_once():
    existing = [f"k{i}" for i in range(50)]
    validate_tags({"k0": "again"}, existing)
    with pytest.raises(InvalidParameterValueException):
        validate_tags({"new": "v"}, existing)
