"""Lambda layers end to end: the layer API through boto3 and the AWS CLI, and functions that
run with their layers at /opt (namespace sandbox, the default) or at a host path (process).

References: botocore's PublishLayerVersion, GetLayerVersion(ByArn), ListLayers,
ListLayerVersions, DeleteLayerVersion and *LayerVersionPermission shapes and examples; Lambda
developer guide, "Packaging your layer content" (layer paths per runtime) and "Adding layers
to functions"; Lambda's error messages as users report them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    ACCOUNT,
    REGION,
    ROLE,
    assert_client_error,
    code_sha256,
    python_zip,
    unique_name,
)
from tests.support import CorralProcess, lambda_client, make_zip
from tests.unit.store.test_blobs import make_zip as zip_with_links
from tests.unit.store.test_blobs import symlink

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
AWS = str(Path(sys.executable).with_name("aws"))
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

# Reports what the function sees of its layers.
PROBE = """
import os, shutil, sys

def handler(event, context):
    import greeting, sitemod
    opt = os.environ["CORRAL_OPT_DIR"]
    return {
        "greeting": greeting.hello(),
        "sitemod": sitemod.NAME,
        "opt": opt,
        "opt_listing": sorted(os.listdir(opt)),
        "tool": shutil.which("layer-tool"),
        "ld": os.environ.get("LD_LIBRARY_PATH"),
        "task": os.environ.get("LAMBDA_TASK_ROOT"),
        "path": os.environ.get("PATH"),
        "sys_path": sys.path[:3],
        "opt_writable": os.access(opt, os.W_OK),
    }
"""


def layer_arn(name: str, version: int | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}"
    return arn if version is None else f"{arn}:{version}"


def probe_layer_zip() -> bytes:
    files = {
        "python/greeting.py": "def hello():\n    return 'hello from a layer'\n",
        f"python/lib/{PY}/site-packages/sitemod.py": "NAME = 'site-packages'\n",
        "bin/layer-tool": "#!/bin/sh\necho tool\n",
        "lib/.keep": "",
    }
    return make_zip(files, {"bin/layer-tool": 0o755})


def publish(lam, name: str, zip_bytes: bytes, **kwargs) -> dict:
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": zip_bytes}, **kwargs)


def create(lam, source: str, layers: list[str], runtime: str = "python3.11", **kw) -> str:
    name = unique_name("lyr")
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": python_zip(source)},
        Layers=layers,
        **kw,
    )
    return name


def invoke(lam, name: str, **kwargs) -> dict:
    response = lam.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


# ---- the layer API ---------------------------------------------------------------------


def test_publish_get_by_name_and_arn_list_and_delete(lam):
    name = unique_name("layer")
    zip_bytes = probe_layer_zip()

    v1 = publish(
        lam,
        name,
        zip_bytes,
        Description="first",
        CompatibleRuntimes=["python3.11", "python3.12"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
    )

    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["LayerArn"] == layer_arn(name)
    assert v1["LayerVersionArn"] == layer_arn(name, 1)
    assert v1["Version"] == 1
    assert v1["Description"] == "first"
    assert v1["LicenseInfo"] == "MIT"
    assert v1["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert v1["CompatibleArchitectures"] == ["x86_64"]
    assert TIMESTAMP.fullmatch(v1["CreatedDate"])
    assert v1["Content"]["CodeSha256"] == code_sha256(zip_bytes)
    assert v1["Content"]["CodeSize"] == len(zip_bytes)
    with urllib.request.urlopen(v1["Content"]["Location"], timeout=10) as response:
        assert response.read() == zip_bytes  # the Location serves the zip as uploaded

    v2 = publish(lam, name, make_zip({"python/other.py": "X = 2\n"}))
    assert v2["Version"] == 2
    assert v2["Description"] == ""
    assert "CompatibleRuntimes" not in v2 and "LicenseInfo" not in v2

    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    by_arn = lam.get_layer_version_by_arn(Arn=layer_arn(name, 1))
    by_layer_arn = lam.get_layer_version(LayerName=layer_arn(name), VersionNumber=1)
    for response in (got, by_arn, by_layer_arn):
        response.pop("ResponseMetadata")
    v1.pop("ResponseMetadata")
    assert got == by_arn == by_layer_arn == v1

    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]  # newest first
    assert versions[1] == {k: v for k, v in v1.items() if k not in ("Content", "LayerArn")}

    layers = {item["LayerName"]: item for item in lam.list_layers()["Layers"]}
    assert layers[name]["LayerArn"] == layer_arn(name)
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2

    deleted = lam.delete_layer_version(LayerName=name, VersionNumber=2)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    again = lam.delete_layer_version(LayerName=name, VersionNumber=2)  # idempotent
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version(LayerName=name, VersionNumber=2)
    assert_client_error(
        excinfo, "ResourceNotFoundException", 404, "The resource you requested does not exist."
    )
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version_by_arn(Arn=layer_arn(name, 2))
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [1]

    # version numbers are never reused
    assert publish(lam, name, make_zip({"python/x.py": ""}))["Version"] == 3


def test_unknown_layers_and_bad_versions(lam):
    name = unique_name("nolayer")
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert lam.delete_layer_version(LayerName=name, VersionNumber=1)
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version(LayerName=name, VersionNumber=0)
    assert_client_error(
        excinfo, "InvalidParameterValueException", 400, "Layer Version Cannot be less than 1"
    )
    with pytest.raises(ClientError) as excinfo:
        lam.publish_layer_version(LayerName="bad name!", Content={"ZipFile": b"x"})
    assert_client_error(excinfo, "ValidationException", 400)


@pytest.mark.parametrize(
    ("path", "error_type"),
    [
        ("/2018-10-31/layers?find=LayerVersion", "ValidationException"),  # no Arn
        ("/2018-10-31/layers/x/versions/abc", "InvalidRequestContentException"),
        ("/2018-10-31/layers?MaxItems=0", "ValidationException"),
        ("/2018-10-31/layers?CompatibleRuntime=cobol", "ValidationException"),
    ],
)
def test_malformed_layer_requests_get_lambda_errors(corral_url, path, error_type):
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(corral_url + path, timeout=10)
    assert excinfo.value.code == 400
    assert excinfo.value.headers["x-amzn-ErrorType"] == error_type
    assert json.loads(excinfo.value.read())["Type"] == "User"


HUGE = "99999999999999999999999"  # beyond any Long: once a 500 (integer overflow)


def test_version_numbers_beyond_a_long_are_not_found_never_a_500(lam, corral_url):
    name = unique_name("huge")
    publish(lam, name, probe_layer_zip())
    huge_arn = layer_arn(name, HUGE)
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version_by_arn(Arn=huge_arn)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)
    message = f"Layer version {huge_arn} does not exist."
    with pytest.raises(ClientError) as excinfo:
        create(lam, "def handler(e, c):\n    return 1\n", [huge_arn])
    assert_client_error(excinfo, "InvalidParameterValueException", 400, message)
    fn = create(lam, "def handler(e, c):\n    return 1\n", [])
    lam.publish_version(FunctionName=fn)
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=fn, Layers=[huge_arn])
    assert_client_error(excinfo, "InvalidParameterValueException", 400, message)
    # list markers: a huge number is past every version; "²" is a digit to str.isdigit only
    versions = lam.list_layer_versions(LayerName=name, Marker=HUGE)["LayerVersions"]
    assert [v["Version"] for v in versions] == [1]
    versions = lam.list_layer_versions(LayerName=name, Marker="\u00b2")["LayerVersions"]
    assert [v["Version"] for v in versions] == [1]
    assert lam.list_versions_by_function(FunctionName=fn, Marker=HUGE)["Versions"] == []
    listed = lam.list_versions_by_function(FunctionName=fn, Marker="\u00b2")["Versions"]
    assert [v["Version"] for v in listed] == ["1"]


def test_list_layers_filters_and_paginates(lam):
    # ruby3.3 and arm64 are used by no other test: the filtered listing is this test's own.
    names = sorted(unique_name("flt") for _ in range(3))
    zip_bytes = make_zip({"ruby/lib/x.rb": "1\n"})
    for name in names:
        publish(lam, name, zip_bytes, CompatibleRuntimes=["ruby3.3"])
    # the latest version of names[0] does not match: its older version is listed
    publish(lam, names[0], zip_bytes, CompatibleRuntimes=["ruby3.4"])
    publish(
        lam, names[1], zip_bytes, CompatibleRuntimes=["ruby3.3"], CompatibleArchitectures=["arm64"]
    )

    listed = lam.list_layers(CompatibleRuntime="ruby3.3")["Layers"]
    assert [item["LayerName"] for item in listed] == names
    assert [item["LatestMatchingVersion"]["Version"] for item in listed] == [1, 2, 1]

    pages, marker = [], None
    while True:
        kwargs = {"Marker": marker} if marker else {}
        page = lam.list_layers(CompatibleRuntime="ruby3.3", MaxItems=1, **kwargs)
        pages.append([item["LayerName"] for item in page["Layers"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert pages == [[n] for n in names]

    arm = lam.list_layers(CompatibleRuntime="ruby3.3", CompatibleArchitecture="arm64")["Layers"]
    assert [item["LayerName"] for item in arm] == [names[1]]

    paginator = lam.get_paginator("list_layer_versions")
    versions = [
        v["Version"]
        for page in paginator.paginate(LayerName=names[0], PaginationConfig={"PageSize": 1})
        for v in page["LayerVersions"]
    ]
    assert versions == [2, 1]
    filtered = lam.list_layer_versions(LayerName=names[0], CompatibleRuntime="ruby3.4")
    assert [v["Version"] for v in filtered["LayerVersions"]] == [2]


def test_layer_version_permissions(lam):
    name = unique_name("perm")
    publish(lam, name, make_zip({"python/p.py": ""}))
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert_client_error(
        excinfo,
        "ResourceNotFoundException",
        404,
        "No policy is associated with the given resource.",
    )

    added = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="xaccount",
        Action="lambda:GetLayerVersion",
        Principal="223456789012",
    )
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "xaccount",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::223456789012:root"},
        "Action": "lambda:GetLayerVersion",
        "Resource": layer_arn(name, 1),
    }
    with pytest.raises(ClientError) as excinfo:
        lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=1,
            StatementId="xaccount",
            Action="lambda:GetLayerVersion",
            Principal="*",
        )
    assert_client_error(
        excinfo,
        "ResourceConflictException",
        409,
        "The statement id (xaccount) provided already exists. Please provide a new statement "
        "id, or remove the existing statement.",
    )
    org = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="org",
        Action="lambda:GetLayerVersion",
        Principal="*",
        OrganizationId="o-abcdefghij",
        RevisionId=added["RevisionId"],
    )
    assert org["RevisionId"] != added["RevisionId"]
    assert json.loads(org["Statement"])["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}
    }

    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == org["RevisionId"]
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == ["xaccount", "org"]

    with pytest.raises(ClientError) as excinfo:
        lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="org", RevisionId=added["RevisionId"]
        )
    assert_client_error(excinfo, "PreconditionFailedException", 412)
    removed = lam.remove_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="org"
    )
    assert removed["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org")
    assert_client_error(
        excinfo, "ResourceNotFoundException", 404, "Statement org is not found in resource policy."
    )
    statements = json.loads(lam.get_layer_version_policy(LayerName=name, VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in statements["Statement"]] == ["xaccount"]

    with pytest.raises(ClientError) as excinfo:
        lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=9,
            StatementId="s",
            Action="lambda:GetLayerVersion",
            Principal="*",
        )
    assert_client_error(
        excinfo,
        "ResourceNotFoundException",
        404,
        f"Layer version {layer_arn(name, 9)} does not exist.",
    )


def test_publish_refuses_hostile_zips_and_s3(lam):
    hostile = BytesIO()
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../escape.py", "x = 1\n")
    with pytest.raises(ClientError) as excinfo:
        publish(lam, unique_name("evil"), hostile.getvalue())
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert "'..'" in message

    with pytest.raises(ClientError) as excinfo:
        publish(lam, unique_name("evil"), b"not a zip")
    assert_client_error(excinfo, "InvalidParameterValueException", 400)

    with pytest.raises(ClientError) as excinfo:
        lam.publish_layer_version(
            LayerName=unique_name("s3"), Content={"S3Bucket": "bucket", "S3Key": "layer.zip"}
        )
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert "S3" in message


def test_aws_cli_publishes_and_lists_layer_versions(corral_url, tmp_path):
    name = unique_name("cli")
    package = tmp_path / "layer.zip"
    package.write_bytes(make_zip({"python/cli_mod.py": "V = 1\n"}))
    home = tmp_path / "aws-home"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }

    def aws(*args: str) -> dict:
        done = subprocess.run(
            [AWS, "lambda", "--endpoint-url", corral_url, "--output", "json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    published = aws(
        "publish-layer-version",
        "--layer-name",
        name,
        "--zip-file",
        f"fileb://{package}",
        "--compatible-runtimes",
        "python3.11",
    )
    assert published["LayerVersionArn"] == layer_arn(name, 1)
    assert (
        published["Content"]["CodeSha256"]
        == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    )
    listed = aws("list-layer-versions", "--layer-name", name)
    assert [v["Version"] for v in listed["LayerVersions"]] == [1]
    got = aws("get-layer-version-by-arn", "--arn", layer_arn(name, 1))
    assert got["CompatibleRuntimes"] == ["python3.11"]
    aws("delete-layer-version", "--layer-name", name, "--version-number", "1")
    assert aws("list-layer-versions", "--layer-name", name)["LayerVersions"] == []


# ---- functions with layers ---------------------------------------------------------------


def test_python_function_imports_what_only_its_layer_provides(lam, corral):
    layer = publish(lam, unique_name("probe"), probe_layer_zip())
    name = create(lam, PROBE, [layer["LayerVersionArn"]])

    config = lam.get_function_configuration(FunctionName=name)
    assert config["Layers"] == [
        {"Arn": layer["LayerVersionArn"], "CodeSize": layer["Content"]["CodeSize"]}
    ]
    body = invoke(lam, name)

    assert body["greeting"] == "hello from a layer"
    assert body["sitemod"] == "site-packages"
    assert body["opt_listing"] == ["bin", "lib", "python"]
    assert body["tool"] == f"{body['opt']}/bin/layer-tool"
    # Lambda's order: the system's, the task root and its lib/, then the layers' lib/
    assert body["ld"] == f"/lib64:/usr/lib64:{body['task']}:{body['task']}/lib:{body['opt']}/lib"
    assert body["sys_path"][1:] == [
        f"{body['opt']}/python/lib/{PY}/site-packages",
        f"{body['opt']}/python",
    ]
    if "sandbox: namespace" in corral.log():
        assert body["opt"] == "/opt"  # the layers are where Lambda puts them, read-only
        assert body["opt_writable"] is False

    # without layers, the module is not there
    plain = create(lam, PROBE, [])
    response = lam.invoke(FunctionName=plain, Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert "greeting" in json.loads(response["Payload"].read())["errorMessage"]


def test_later_layers_overwrite_earlier_files(lam):
    first = publish(
        lam,
        unique_name("first"),
        make_zip({"python/shared.py": "VALUE = 'first'\n", "python/only_first.py": "X = 1\n"}),
    )["LayerVersionArn"]
    second = publish(
        lam, unique_name("second"), make_zip({"python/shared.py": "VALUE = 'second'\n"})
    )["LayerVersionArn"]
    source = (
        "import shared, only_first\n"
        "def handler(event, context):\n"
        "    return {'value': shared.VALUE, 'x': only_first.X}\n"
    )

    assert invoke(lam, create(lam, source, [first, second])) == {"value": "second", "x": 1}
    assert invoke(lam, create(lam, source, [second, first])) == {"value": "first", "x": 1}


def test_layers_that_combine_into_a_link_out_of_opt_are_refused(lam):
    # Each layer is safe alone (a/b -> .. is its own root; c -> a/b/.. is "a" lexically),
    # together c resolves above /opt: the function is refused, nothing follows the link.
    first = publish(lam, unique_name("ln"), zip_with_links(("a/", b""), symlink("a/b", "..")))
    second = publish(lam, unique_name("ln"), zip_with_links(symlink("c", "a/b/..")))
    arns = [first["LayerVersionArn"], second["LayerVersionArn"]]
    with pytest.raises(ClientError) as excinfo:
        create(lam, "def handler(e, c):\n    return 1\n", arns)
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert "leaves /opt" in message
    assert invoke(lam, create(lam, "def handler(e, c):\n    return 1\n", arns[:1])) == 1


def test_function_layer_rules(lam):
    arns = [
        publish(lam, unique_name("many"), make_zip({f"python/m{i}.py": ""}))["LayerVersionArn"]
        for i in range(6)
    ]
    with pytest.raises(ClientError) as excinfo:
        create(lam, "def handler(e, c):\n    return 1\n", arns)
    assert_client_error(
        excinfo, "InvalidParameterValueException", 400, "Cannot reference more than 5 layers."
    )

    missing = layer_arn(unique_name("ghost"), 3)
    with pytest.raises(ClientError) as excinfo:
        create(lam, "def handler(e, c):\n    return 1\n", [arns[0], missing])
    assert_client_error(
        excinfo, "InvalidParameterValueException", 400, f"Layer version {missing} does not exist."
    )

    name = create(lam, "def handler(e, c):\n    return 1\n", arns[:5])
    assert len(lam.get_function_configuration(FunctionName=name)["Layers"]) == 5
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=name, Layers=[missing])
    assert_client_error(
        excinfo, "InvalidParameterValueException", 400, f"Layer version {missing} does not exist."
    )

    base = arns[0].rsplit(":", 1)[0]
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=name, Layers=[f"{base}:1", f"{base}:2"])
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert message.startswith("Two different versions of the same layer")

    other_region = arns[0].replace(f":{REGION}:", ":eu-west-1:")
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=name, Layers=[other_region])
    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        f"Layers are not in the same region as the function. Layers are expected to be in "
        f"region {REGION}.",
    )

    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=name, Layers=["not-an-arn"])
    assert_client_error(excinfo, "ValidationException", 400)

    cleared = lam.update_function_configuration(FunctionName=name, Layers=[])
    assert "Layers" not in cleared


def test_versions_keep_their_layers_and_deleted_layer_versions_keep_working(lam):
    layer_name = unique_name("keep")
    layer = publish(lam, layer_name, probe_layer_zip())
    name = create(lam, PROBE, [layer["LayerVersionArn"]])
    published = lam.publish_version(FunctionName=name)
    assert published["Layers"] == [
        {"Arn": layer["LayerVersionArn"], "CodeSize": layer["Content"]["CodeSize"]}
    ]

    lam.delete_layer_version(LayerName=layer_name, VersionNumber=1)
    # a new revision: a cold start that must still find the deleted layer's content
    lam.update_function_configuration(FunctionName=name, Description="after delete")
    assert invoke(lam, name)["greeting"] == "hello from a layer"
    assert invoke(lam, name, Qualifier=published["Version"])["sitemod"] == "site-packages"
    # keeping the same (deleted) layer version in an update is allowed; adding it anew is not
    lam.update_function_configuration(FunctionName=name, Layers=[layer["LayerVersionArn"]])
    fresh = create(lam, PROBE, [])
    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(FunctionName=fresh, Layers=[layer["LayerVersionArn"]])
    assert_client_error(excinfo, "InvalidParameterValueException", 400)


def test_code_and_layers_together_are_limited_to_250_mb(lam):
    # Zeros compress ~1000:1, so the zips are small; unpacked they pass the quota together.
    half = 262_144_000 // 2
    layer_name = unique_name("big")
    layer = publish(lam, layer_name, make_zip({"data/zeros": b"\0" * (half + 1)}))
    code = make_zip({"app.py": "def handler(e, c):\n    return 1\n", "zeros": b"\0" * half})
    name = unique_name("big")
    try:
        with pytest.raises(ClientError) as excinfo:
            lam.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=ROLE,
                Handler="app.handler",
                Code={"ZipFile": code},
                Layers=[layer["LayerVersionArn"]],
            )
        actual = half + 1 + half + len("def handler(e, c):\n    return 1\n")
        assert_client_error(
            excinfo,
            "InvalidParameterValueException",
            400,
            "Function code combined with layers exceeds the maximum allowed size of 262144000 "
            f"bytes. The actual size is {actual} bytes.",
        )
    finally:
        lam.delete_layer_version(LayerName=layer_name, VersionNumber=1)


def test_a_custom_runtime_can_ship_as_a_layer(lam):
    # provided.* runs /opt/bootstrap when the function's code has none (Lambda's rule).
    bootstrap = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS="$(mktemp)"
  curl -sS -D "$HEADERS" -o /dev/null "$API/next"
  ID="$(grep -i Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  BODY="{\"message\": \"$(cat "$LAMBDA_TASK_ROOT/message.txt")\", \"from\": \"$0\"}"
  curl -sS -o /dev/null -X POST "$API/$ID/response" -d "$BODY"
done
"""
    layer = publish(
        lam, unique_name("rt"), make_zip({"bootstrap": bootstrap}, {"bootstrap": 0o755})
    )
    name = unique_name("lyr")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="function.handler",
        Code={"ZipFile": make_zip({"message.txt": "from the code"})},
        Layers=[layer["LayerVersionArn"]],
    )
    body = invoke(lam, name)
    assert body["message"] == "from the code"
    assert body["from"].endswith("/bootstrap") and "/var/task" not in body["from"]


def test_node_function_requires_a_module_from_its_layer(lam, corral_url):
    with urllib.request.urlopen(f"{corral_url}/corral/v1/runtimes", timeout=10) as response:
        runtimes = json.loads(response.read())
    node = runtimes.get("nodejs20.x")
    if node is None or node.startswith("unavailable"):
        pytest.skip(f"nodejs20.x is not in this server's runtime catalogue ({node or 'absent'})")
    layer = publish(
        lam,
        unique_name("node"),
        make_zip(
            {
                "nodejs/node_modules/greet/index.js": (
                    "exports.greet = (who) => `hello ${who} from a layer`;\n"
                )
            }
        ),
    )
    name = unique_name("lyr")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Code={
            "ZipFile": make_zip(
                {
                    "index.js": (
                        "const { greet } = require('greet');\n"
                        "exports.handler = async (event) => ({ msg: greet(event.who) });\n"
                    )
                }
            )
        },
        Layers=[layer["LayerVersionArn"]],
    )
    response = lam.invoke(FunctionName=name, Payload=b'{"who": "node"}')
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    assert body == {"msg": "hello node from a layer"}


# ---- the process sandbox, and a restart ------------------------------------------------------


def test_process_sandbox_passes_the_host_path_of_the_layers(tmp_path):
    data = tmp_path / "data"
    with CorralProcess(data, "--sandbox", "process", "--code-storage-limit", "100000") as server:
        lam = lambda_client(server.url)
        layer = publish(lam, unique_name("proc"), probe_layer_zip())
        name = create(lam, PROBE, [layer["LayerVersionArn"]])
        body = invoke(lam, name)
        # layer archives count in the code storage quota, as in Lambda
        usage = lam.get_account_settings()["AccountUsage"]["TotalCodeSize"]
        code_size = lam.get_function_configuration(FunctionName=name)["CodeSize"]
        assert usage == code_size + layer["Content"]["CodeSize"]
        with pytest.raises(ClientError) as excinfo:
            publish(lam, unique_name("huge"), make_zip({"blob": os.urandom(120_000)}))
        assert_client_error(excinfo, "CodeStorageExceededException", 400)
    assert body["greeting"] == "hello from a layer"
    assert body["sitemod"] == "site-packages"
    opt = Path(body["opt"])
    assert opt != Path("/opt") and opt.is_relative_to((tmp_path / "data").resolve())
    assert body["tool"] == str(opt / "bin" / "layer-tool")


def test_layers_policies_and_functions_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    layer_name = unique_name("durable")
    with CorralProcess(data) as server:
        lam = lambda_client(server.url)
        layer = publish(lam, layer_name, probe_layer_zip(), CompatibleRuntimes=["python3.11"])
        lam.add_layer_version_permission(
            LayerName=layer_name,
            VersionNumber=1,
            StatementId="all",
            Action="lambda:GetLayerVersion",
            Principal="*",
        )
        name = create(lam, PROBE, [layer["LayerVersionArn"]])
        publish(lam, layer_name, make_zip({"python/v2.py": ""}))
        lam.delete_layer_version(LayerName=layer_name, VersionNumber=2)
    with CorralProcess(data) as server:
        lam = lambda_client(server.url)
        got = lam.get_layer_version(LayerName=layer_name, VersionNumber=1)
        assert got["Content"]["CodeSha256"] == layer["Content"]["CodeSha256"]
        policy = json.loads(
            lam.get_layer_version_policy(LayerName=layer_name, VersionNumber=1)["Policy"]
        )
        assert [s["Sid"] for s in policy["Statement"]] == ["all"]
        assert invoke(lam, name)["greeting"] == "hello from a layer"
        assert publish(lam, layer_name, make_zip({"python/v3.py": ""}))["Version"] == 3
