"""The OpenAPI document says what the app serves: the same paths and methods, valid OpenAPI
3.1, and an error body for every refusal. (Answers matching it: ``test_schemathesis.py``.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from quart_trio import QuartTrio

from tests.bed import pki as test_pki
from transporter.config.store_spec import StoreSpec
from transporter.cp.api import GATE, create_app
from transporter.cp.api.services import Services
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.watch import EventWatch
from transporter.store import open_store

_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[QuartTrio]:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        live = LiveAgents()
        intake = Intake(store, test_pki.shared().signer, live)
        yield create_app(Services(store, intake, live, EventWatch()))


@pytest.fixture
async def document(app: QuartTrio) -> dict[str, Any]:
    answer = await app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    data: dict[str, Any] = await answer.get_json()
    return data


def routes(app: QuartTrio) -> set[tuple[str, str]]:
    """``(path, method)`` of every route, paths written as OpenAPI writes them."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


async def test_the_document_has_exactly_the_apps_routes(
    app: QuartTrio, document: dict[str, Any]
) -> None:
    served, described = routes(app), operations(document)
    assert served - described == set(), "routes that openapi.py does not describe"
    assert described - served == set(), "operations in openapi.py that no route serves"


async def test_path_parameters_are_the_routes_arguments(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(re.findall(r"{([^}]+)}", path)), (method, path)


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


async def test_every_refusal_has_the_error_body(document: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error, (method, path, status)
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]


async def test_every_route_declares_what_it_needs_as_the_document_says(
    app: QuartTrio, document: dict[str, Any]
) -> None:
    """The gate's declarations (cp/api/) and the document's ``security`` and
    ``x-transporter-role`` (cp/openapi/) agree, operation by operation; no route is left to
    the default."""
    declared = app.extensions[GATE].declared()
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"}
    assert set(declared) == endpoints
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            role = declared[rule.endpoint]
            if role is None:
                assert operation["security"] == [], path
                assert "401" not in operation["responses"], path
            else:
                assert "security" not in operation, path  # the document's: a bearer token
                assert operation["x-transporter-role"] == role.value, path
                assert {"401", "403"} <= set(operation["responses"]), path
