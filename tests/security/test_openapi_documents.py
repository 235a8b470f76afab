"""The committed OpenAPI documents of the vault, the card ingress and the gateway describe
exactly the routes their apps serve. (The apps serve no document of their own: the vault's hot
routes are plain Starlette routes and every CDE endpoint reads its JSON body itself, so
FastAPI's generated document would have no request schemas. Whether each answer matches the
document is checked by schemathesis against the running processes, test_fuzz_openapi.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from audit.bootstrap import open_audit_log
from cde.gateway.app import create_gateway_app
from cde.gateway.bootstrap import build_gateway
from cde.gateway.config import GatewaySettings
from cde.vault.app import create_ingress_app, create_vault_app
from cde.vault.bootstrap import build_ingress, build_vault
from cde.vault.config import IngressSettings, VaultSettings
from fincore.identity import ServiceTokenVerifier
from fincore.pki import ensure_ca
from tests.security.test_fuzz_openapi import DOCUMENTS

KIT_ROUTES = {"/healthz", "/readyz", "/metrics"}


def served(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route of the app but the service kit's own."""
    found = set()
    for route in app.routes:
        if not isinstance(route, APIRoute | Route) or route.path in KIT_ROUTES:
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def documented(name: str) -> set[tuple[str, str]]:
    document = json.loads(Path(DOCUMENTS[name]).read_text())
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[str, FastAPI]]:
    """The three CDE apps built in this process (memory stores, a throw-away CA and key file,
    a file audit log under tmp_path); nothing is started."""
    env = {
        "FINCORE_VAR_DIR": str(tmp_path),
        "FINCORE_ENV": "test",
        "FINCORE_VAULT_DB_URL": "memory://",
        "FINCORE_GATEWAY_DB_URL": "sqlite:///" + str(tmp_path / "gateway.db"),
        "FINCORE_GATEWAY_PSP_SECRET_KEY": "sk_test_documents",
        "FINCORE_GATEWAY_PSP_WEBHOOK_SECRET": "whsec_documents",
    }
    _key, ca = ensure_ca(tmp_path / "pki")
    log = open_audit_log("cde", "documents", env=env)
    vault = build_vault(VaultSettings.from_env(env), audit=log)
    ingress = build_ingress(
        IngressSettings.from_env(env), credentials=None, ca_file=None, audit=log
    )
    gateway = build_gateway(
        GatewaySettings.from_env(env), credentials=None, ca_file=None, audit=log
    )
    built = {
        "vault": create_vault_app(
            vault, ServiceTokenVerifier.from_file(ca, "vault"), manage_runtime=False
        ),
        "ingress": create_ingress_app(ingress, manage_runtime=False),
        "gateway": create_gateway_app(
            gateway, ServiceTokenVerifier.from_file(ca, "gateway"), manage_runtime=False
        ),
    }
    try:
        yield built
    finally:

        async def close() -> None:
            for runtime in (vault, ingress, gateway):
                await runtime.close()

        asyncio.run(close())
        log.close()


@pytest.mark.parametrize("name", ["vault", "ingress", "gateway"])
def test_the_committed_document_lists_exactly_the_apps_routes(
    apps: dict[str, FastAPI], name: str
) -> None:
    """Every served route is documented and every documented route is served."""
    assert served(apps[name]) == documented(name)


@pytest.mark.parametrize("name", ["vault", "ingress", "gateway"])
def test_every_documented_operation_is_complete(name: str) -> None:
    """Each operation has an id, a security requirement (its own or the document's), a 2xx
    answer with a JSON schema, and Stripe-style error answers that never name a value."""
    document: dict[str, Any] = json.loads(Path(DOCUMENTS[name]).read_text())
    assert document["openapi"].startswith("3.1")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["operationId"], (path, method)
            assert operation.get("security", document.get("security")), (path, method)
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == 1, (path, method)
            assert "schema" in responses[success[0]]["content"]["application/json"]
            errors = [code for code in responses if code[0] in "45"]
            assert errors, (path, method)
            for code in errors:
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, code)
