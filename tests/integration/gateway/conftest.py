"""Fixtures for the gateway's integration tests: the PSP sandbox, the vault and the gateway as
real processes on free loopback ports with a throw-away PKI, and a recording API stand-in.

One stack per session: the sandbox delivers its webhooks to the gateway (HTTPS, dev CA), the
gateway relays to the recording API. Tests that stop things restore them before they end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fincore.runner import Plan
from tests.integration.gateway.peers import (
    GatewayServer,
    RecordingApi,
    VaultServer,
    gateway_env,
    make_plan,
    start_gateway,
    start_vault,
)
from tests.integration.psp_sandbox.peer import SandboxServer, start_sandbox


@pytest.fixture(scope="session")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """State folder, free ports and the CA of this session's stack."""
    return make_plan(tmp_path_factory.mktemp("gateway-stack"))


@pytest.fixture(scope="session")
def recording_api(plan: Plan) -> Iterator[RecordingApi]:
    """The API stand-in (TLS, checks the gateway's service token)."""
    api = RecordingApi(plan).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def vault(plan: Plan) -> Iterator[VaultServer]:
    """`python -m cde.vault.app vault` with the session PKI; both test merchants attested."""
    yield from start_vault(plan)


@pytest.fixture(scope="session")
def sandbox(plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The PSP sandbox (its own state folder), trusting the session CA for webhooks."""
    yield from start_sandbox(
        tmp_path_factory.mktemp("gateway-sandbox"),
        ca_file=plan.ca_file,
        WEBHOOK_CONCURRENCY="2",
        SESSION_MIN_TTL_S="60",
    )


@pytest.fixture(scope="session")
def gateway(
    plan: Plan, vault: VaultServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> Iterator[GatewayServer]:
    """The gateway process wired to the vault, the sandbox and the recording API; the sandbox
    sends its webhooks here."""
    env = gateway_env(
        plan, sandbox.url, sandbox.secret_key, sandbox.webhook_secret, recording_api.url
    )
    for server in start_gateway(plan, env):
        sandbox.set_endpoints(server.url + "/v1/psp/webhooks")
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        sandbox: SandboxServer = request.getfixturevalue("sandbox")
        sandbox.clear_faults()


def audit_records(plan: Plan) -> list[dict[str, object]]:
    """Every record of the CDE audit log (file sink under the stack's var/)."""
    import json

    path = Path(plan.var_dir) / "audit" / "cde" / "records.jsonl"
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records
