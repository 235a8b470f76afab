"""The committed OpenAPI document is the app's, and every operation documents an example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from noncde.api.app import OPENAPI_FILE, openapi_json
from tests.integration.api.conftest import Api


def test_the_committed_schema_matches_the_app() -> None:
    """`python -m noncde.api.app openapi > noncde/api/openapi.json` is up to date."""
    committed = json.loads(Path(OPENAPI_FILE).read_text())
    assert committed == json.loads(openapi_json()), (
        "noncde/api/openapi.json is stale: regenerate it with "
        "`python -m noncde.api.app openapi > noncde/api/openapi.json`"
    )


def _has_example(node: Any, schemas: dict[str, Any]) -> bool:
    if not isinstance(node, dict):
        return False
    if "example" in node or "examples" in node:
        return True
    ref = node.get("$ref")
    if ref:
        return _has_example(schemas[ref.rsplit("/", 1)[-1]], schemas)
    if node.get("oneOf"):
        return all(_has_example(option, schemas) for option in node["oneOf"])
    return any(_has_example(option, schemas) for option in node.get("anyOf", []))


def test_every_operation_has_examples_and_a_security_scheme(api: Api) -> None:
    """Request bodies and success responses carry examples; /docs renders them, no CDN."""
    document = api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    operations = [
        (path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()
    ]
    assert len(operations) == 17
    for path, method, op in operations:
        assert op["security"], (path, method)
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert _has_example(body["schema"], schemas), (path, method)
        success = next(v for k, v in op["responses"].items() if k.startswith("2"))
        assert _has_example(success["content"]["application/json"]["schema"], schemas), path
        assert "422" not in op["responses"] or "HTTPValidationError" not in json.dumps(
            op["responses"]["422"]
        )
    page = api.client.get("/docs")
    assert page.status_code == 200 and "/v1/charges/{id}/capture" in page.text
    assert "<script" not in page.text and "cdn" not in page.text.lower()


def test_every_route_denies_callers_without_credentials(api: Api) -> None:
    """Deny by default (PCI DSS 7.2.1): every route but health, metrics and the docs answers
    401 without a key or service identity, documented or not (the dashboard's staff routes)."""
    public = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}
    checked = 0
    for route in api.client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", None)
        if not path or path in public:
            continue
        concrete = re.sub(r"\{[a-z_]+\}", "ch_AbCdEfGhIjKlMnOpQrStUvWx", path)
        for method in sorted(route.methods - {"HEAD"}):
            response = api.client.request(method, concrete, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    documented = api.client.get("/openapi.json").json()["paths"]
    assert checked >= sum(len(ops) for ops in documented.values()) == 17
