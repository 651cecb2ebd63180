"""Small builders for the document's pieces, so that each operation reads as a list of facts."""

from __future__ import annotations

from typing import Any

JSON = "application/json"

STRING: dict[str, Any] = {"type": "string"}
NUMBER: dict[str, Any] = {"type": "number"}
INTEGER: dict[str, Any] = {"type": "integer"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
LABELS: dict[str, Any] = {"type": "object", "additionalProperties": STRING}


def ref(name: str) -> dict[str, Any]:
    """A schema of ``components.schemas``, by name."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str] | None, **properties: Any) -> dict[str, Any]:
    """A closed object: these properties only; ``required`` ones always (``None``: all).

    Closed, so that schemathesis fails an answer that grows a field the document does not name.
    """
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A response with a JSON body: every answer is JSON, errors included."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return answer(description, ref("Error"))


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A query parameter; the API requires none."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path(name: str, description: str) -> dict[str, Any]:
    """A path parameter. Any string: an id that breaks the rules names nothing, so it is a 404."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": STRING,
        "description": description,
    }


def limit(default: int, max_limit: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default}
    return query("limit", schema, "Items in one page.")


CURSOR = query("cursor", STRING, "From the previous page's ``cursor``.")

UNAVAILABLE = error("The store did not answer (``store_unavailable``); try again.")
BAD_QUERY = error("A query parameter is not valid (``invalid_query``).")
