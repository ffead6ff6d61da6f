"""OpenAI's published schemas (a subset carried as test data) and one validator per schema.

``tests/data/openai-openapi-2.3.0-subset.json`` is copied verbatim from openai/openai-openapi
2.3.0 by ``scripts/openai_spec_subset.py`` (its docstring says how to refresh it). The document's
leftover OpenAPI 3.0 ``nullable: true`` is read as "or null", as OpenAPI 3.1 readers do.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema

from standins.processes import ROOT

SPEC_VERSION = "2.3.0"
SPEC_PATH = ROOT / "tests" / "data" / f"openai-openapi-{SPEC_VERSION}-subset.json"
_PREFIX = "#/components/schemas/"


def _or_null(node: Any) -> Any:
    """The node with every ``nullable: true`` turned into ``anyOf: [node, null]``."""
    if isinstance(node, list):
        return [_or_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _or_null(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _schemas() -> dict[str, Any]:
    document = json.loads(SPEC_PATH.read_text())
    assert document["info"]["version"] == SPEC_VERSION
    return _or_null(document["components"]["schemas"])  # type: ignore[no-any-return]


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"{_PREFIX}{name}", "components": {"schemas": _schemas()}}
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _stream_event_schemas() -> dict[str, str]:
    """Responses stream events: ``type`` -> the schema of that event (named in ResponseStreamEvent)."""
    by_type = {}
    for option in _schemas()["ResponseStreamEvent"]["anyOf"]:
        name = option["$ref"][len(_PREFIX) :]
        for kind in _schemas()[name]["properties"]["type"].get("enum", []):
            by_type[kind] = name
    return by_type


def violations(name: str, instance: Any) -> list[str]:
    """Where ``instance`` breaks the schema ``name``: one line per error, its JSON path first."""
    return [f"{name} {error.json_path}: {error.message[:300]}" for error in _validator(name).iter_errors(instance)]


def stream_event_violations(event: Any) -> list[str]:
    """A Responses stream event, checked against the schema its ``type`` names."""
    kind = event.get("type") if isinstance(event, dict) else None
    name = _stream_event_schemas().get(kind) if isinstance(kind, str) else None
    if name is None:
        return [f"ResponseStreamEvent: no event type {kind!r} in the spec"]
    return violations(name, event)
