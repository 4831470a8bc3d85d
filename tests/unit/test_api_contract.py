"""The OpenAPI document is the contract: docs/api.md and it name the same operations with
the same statuses, every error is declared in the one error shape, and every input
number and text carries its bound."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from functools import cache
from typing import Any

import pytest
from fastapi.routing import APIRoute

import api.routes
from api.main import create_app
from eventmart.settings import PROJECT_ROOT
from tests.conftest import make_test_settings
from tests.unit.test_limits import unbounded

DOCS = PROJECT_ROOT / "docs" / "api.md"
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) (/\S*) \|(.*)\|\s*$")


@cache
def contract() -> dict[str, Any]:
    return create_app(make_test_settings()).openapi()


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


def documented() -> dict[tuple[str, str], set[str]]:
    """(method, path template) -> the statuses the row of docs/api.md lists."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        match = ROW.match(line)
        if match:
            method, path, rest = match.groups()
            statuses = rest.rsplit("|", 1)[-1]
            rows[method, template(path)] = set(re.findall(r"\b[1-5]\d\d\b", statuses))
    return rows


def served() -> dict[tuple[str, str], set[str]]:
    return {
        (method.upper(), template(path)): set(operation["responses"])
        for path, operations in contract()["paths"].items()
        for method, operation in operations.items()
    }


def test_the_docs_list_operations():
    assert len(documented()) >= 20


@pytest.mark.parametrize("operation", sorted(documented()), ids=" ".join)
def test_every_documented_operation_and_status_is_in_the_openapi_document(
    operation: tuple[str, str],
):
    assert operation in served(), f"{operation} is in docs/api.md but not served"
    assert documented()[operation] <= served()[operation]


def test_every_served_operation_and_status_is_documented():
    undocumented = {
        operation: statuses - documented().get(operation, set())
        for operation, statuses in served().items()
        if statuses - documented().get(operation, set())
    }
    assert undocumented == {}


def test_every_error_status_is_declared_in_the_error_shape():
    for path, operations in contract()["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (
                        method,
                        path,
                        status,
                    )
    assert "HTTPValidationError" not in contract()["components"]["schemas"]


def test_every_read_that_can_answer_not_yet_visible_is_documented():
    """A client told 503 after its own write must find why in docs/api.md."""
    section = DOCS.read_text().split("## Reading right after a write", 1)[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `(GET \S+)` \|", section, re.MULTILINE))
    lagging = {
        f"{method} {route.path}"
        for module in pkgutil.iter_modules(api.routes.__path__)
        for route in importlib.import_module(f"api.routes.{module.name}").router.routes
        if isinstance(route, APIRoute) and "not_yet_visible" in inspect.getsource(route.endpoint)
        for method in route.methods
    }
    assert len(lagging) >= 4
    assert lagging == listed


def test_the_validation_rules_are_in_the_document():
    schemas = contract()["components"]["schemas"]
    register = schemas["RegisterUser"]["properties"]
    assert (register["password"]["minLength"], register["password"]["maxLength"]) == (8, 72)
    assert "bytes" in register["password"]["description"]
    assert "@" in register["email"]["pattern"] and register["email"]["maxLength"] == 254
    assert schemas["Money"]["properties"]["amount"]["maximum"] == 10**12
    assert schemas["OrderLineIn"]["properties"]["quantity"]["maximum"] == 1000
    assert "\\x00" in schemas["CreateProduct"]["properties"]["name"]["pattern"]


@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name, schema in contract()["components"]["schemas"].items()
        if schema.get("additionalProperties") is False  # the input models
    ),
)
def test_every_number_and_text_of_every_input_is_bounded(name: str):
    schemas = contract()["components"]["schemas"]
    assert unbounded(schemas[name], schemas, name) == []


def test_every_query_header_and_path_parameter_is_bounded():
    for path, operations in contract()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                where = f"{method} {path} {parameter['name']}"
                assert (
                    unbounded(parameter["schema"], contract()["components"]["schemas"], where) == []
                )


def test_the_boundary_refuses_non_json_bodies_on_exactly_the_deletes_that_take_one():
    from api.boundary import DELETES_WITH_BODY

    with_body = {
        path
        for path, operations in contract()["paths"].items()
        if "requestBody" in operations.get("delete", {})
    }
    assert with_body == DELETES_WITH_BODY == {"/v1/users/me"}
