"""Write the part of OpenAI's OpenAPI document that the conformance tests validate against.

The tests carry it as data (``tests/data/openai-openapi-<version>-subset.json``) and never read
the published document itself. To refresh it, download ``openapi.json`` (or ``.yaml``, converted)
of the wanted release from the openai/openai-openapi repository and run:

    .venv/bin/python scripts/openai_spec_subset.py PATH/TO/openapi.json tests/data/

The subset is the schemas below and every schema they reference, copied verbatim (the tests
read the document's leftover OpenAPI 3.0 ``nullable: true`` as "or null" when they load it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The answers the chat function sends: Chat Completions (JSON, chunks), the Responses API (the
# response object, its stream events), the models list and one model, and errors.
ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "Response",
    "ResponseStreamEvent",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
)
_PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(_PREFIX) :]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def subset(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    keep: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        todo.extend(sorted(_refs(schemas[name]) - keep.keys()))
    version = document["info"]["version"]
    return {
        "openapi": document["openapi"],
        "info": {
            "title": f"{document['info']['title']}: the schemas of the chat function's answers",
            "version": version,
            "x-source": f"openai/openai-openapi {version}, subset written by scripts/openai_spec_subset.py",
            "x-roots": list(ROOTS),
        },
        "paths": {},
        "components": {"schemas": dict(sorted(keep.items()))},
    }


def main(source: str, folder: str) -> None:
    document = json.loads(Path(source).read_text())
    out = Path(folder) / f"openai-openapi-{document['info']['version']}-subset.json"
    out.write_text(json.dumps(subset(document), indent=1, sort_keys=False) + "\n")
    print(f"{out}: {len(subset(document)['components']['schemas'])} schemas")


if __name__ == "__main__":
    main(*sys.argv[1:3])
