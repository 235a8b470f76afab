"""noncde.api (non-CDE): the OpenAPI document (`/openapi.json`) and a self-contained reference
page (`/docs`) rendered from it on the server: no script or stylesheet from a CDN, so reading
the docs sends nothing off this machine.

`openapi_document(app)` is also what `python -m noncde.api.app openapi` writes to the committed
`noncde/api/openapi.json` (a test checks both are equal).
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _refers_to_validation(response: dict[str, Any]) -> bool:
    text = json.dumps(response)
    return any(f"#/components/schemas/{name}" in text for name in _VALIDATION_SCHEMAS)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, adjusted to what the API really does: validation errors are 400
    Stripe-style errors (not FastAPI's 422 shape), and each path names its security scheme."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses and _refers_to_validation(responses["422"]):
                del responses["422"]
            if path.startswith("/internal/"):
                operation["security"] = [{"serviceToken": []}]
            else:
                operation["security"] = [{"secretKey": []}]
    components = schema.setdefault("components", {})
    for name in _VALIDATION_SCHEMAS:
        components.get("schemas", {}).pop(name, None)
    components["securitySchemes"] = {
        "secretKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "Your secret API key: `Authorization: Bearer sk_test_…` "
            "(or HTTP Basic with the key as user name).",
        },
        "serviceToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-FinCore-Service-Token",
            "description": "A FinCore service identity token (internal callers only).",
        },
    }
    return schema


def _example_of(content: dict[str, Any], components: dict[str, Any]) -> Any:
    media = content.get("application/json", {})
    if "example" in media:
        return media["example"]
    ref = media.get("schema", {}).get("$ref", "")
    if not ref:
        for option in media.get("schema", {}).get("anyOf", []):
            ref = option.get("$ref", "")
            if ref:
                break
    target = components.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    examples = target.get("examples")
    return examples[0] if examples else None


def render_docs(schema: dict[str, Any]) -> str:
    """The reference page: every operation with its parameters and examples."""
    components = schema.get("components", {}).get("schemas", {})
    esc = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{esc(schema['info']['title'])}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code,pre{background:#f4f4f4;border-radius:4px}pre{padding:.6rem;"
        "overflow:auto}h2{margin-top:2.5rem;border-top:1px solid #ddd;padding-top:1rem}"
        ".m{font-weight:700;text-transform:uppercase;margin-right:.5rem}</style></head><body>",
        f"<h1>{esc(schema['info']['title'])}</h1>",
        f"<p>{esc(schema['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>",
    ]
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(
                f"<h2><span class=m>{esc(method)}</span><code>{esc(path)}</code></h2>"
                f"<p><b>{esc(op.get('summary', ''))}</b></p>"
                f"<p>{esc(op.get('description', ''))}</p>"
            )
            params = op.get("parameters", [])
            if params:
                parts.append("<p>Parameters:</p><ul>")
                for param in params:
                    parts.append(
                        f"<li><code>{esc(param['name'])}</code> ({esc(param['in'])})"
                        f"{' required' if param.get('required') else ''}: "
                        f"{esc(param.get('description', ''))}</li>"
                    )
                parts.append("</ul>")
            body = op.get("requestBody", {}).get("content")
            if body:
                example = _example_of(body, components)
                parts.append(
                    f"<p>Request body example:</p><pre>{esc(json.dumps(example, indent=2))}</pre>"
                )
            for status, response in op.get("responses", {}).items():
                example = _example_of(response.get("content", {}), components)
                parts.append(f"<p>{esc(status)}: {esc(response.get('description', ''))}</p>")
                if example is not None and str(status).startswith("2"):
                    parts.append(f"<pre>{esc(json.dumps(example, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def install_docs(app: FastAPI) -> None:
    """`/openapi.json` and `/docs` (public, like Stripe's reference; no secrets inside)."""
    cached: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if "schema" not in cached:
            cached["schema"] = openapi_document(app)
        return dict(cached["schema"])

    app.openapi = document  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(document())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if "html" not in cached:
            cached["html"] = render_docs(document())
        return HTMLResponse(cached["html"])
