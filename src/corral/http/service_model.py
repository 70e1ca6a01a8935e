"""Lambda's botocore service model (lambda/2015-03-31/service-2.json), read once.

This module owns reading the model file; it does not route or validate. `app.py` calls
`ServiceModel.load()` once at startup and hands the result to whoever needs operations
(the route table) or shapes (`corral.model.validation.InputValidator`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

_MODEL_DIR = ("data", "lambda", "2015-03-31")


@dataclass(frozen=True)
class Operation:
    """One operation as the model declares it (`http` block plus input/output shapes)."""

    name: str
    method: str
    request_uri: str  # as in the model, e.g. "/2015-03-31/functions/{FunctionName}/invocations"
    response_code: int
    input_shape: str | None
    output_shape: str | None


class ServiceModel:
    """Shapes and operations of the Lambda API, as plain data.

    `shapes` is the model's `shapes` object unchanged (shape name -> definition dict);
    `operations` maps the operation name (`CreateFunction`) to its `Operation`.
    """

    def __init__(
        self, shapes: dict[str, Any], operations: dict[str, Operation], api_version: str
    ) -> None:
        self.shapes = shapes
        self.operations = operations
        self.api_version = api_version

    @classmethod
    def from_dict(cls, model: dict[str, Any]) -> ServiceModel:
        operations = {}
        for name, op in model["operations"].items():
            http = op["http"]
            operations[name] = Operation(
                name=name,
                method=http["method"],
                request_uri=http["requestUri"],
                response_code=http.get("responseCode", 200),
                input_shape=op.get("input", {}).get("shape"),
                output_shape=op.get("output", {}).get("shape"),
            )
        return cls(model["shapes"], operations, model["metadata"]["apiVersion"])

    @classmethod
    def load(cls, model_dir: tuple[str, ...] = _MODEL_DIR) -> ServiceModel:
        """Read the model shipped inside the installed botocore package.

        Blocking file I/O (~20 ms): call it once at startup, never per request. Reads the
        package data directly rather than through `botocore.loaders`, so a stray
        `~/.aws/models` cannot change what Corral serves.
        """
        folder = resources.files("botocore").joinpath(*model_dir)
        packed = folder.joinpath("service-2.json.gz")
        if packed.is_file():
            raw = gzip.decompress(packed.read_bytes())
        else:  # older botocore releases ship the model uncompressed
            raw = folder.joinpath("service-2.json").read_bytes()
        return cls.from_dict(json.loads(raw))
