"""The runner gives each process only its own zone's settings and its own credentials."""

from __future__ import annotations

from pathlib import Path

from fincore.runner import COMPONENTS, Plan, component_env, default_ports


def _plan(tmp_path: Path) -> Plan:
    return Plan(var_dir=tmp_path, ports=default_ports())


def test_cde_process_gets_no_noncde_settings(tmp_path: Path) -> None:
    """A CDE process sees CDE settings and none of the non-CDE zone's."""
    parent = {
        "PATH": "/usr/bin",
        "FINCORE_VAULT_KEY_URL": "file:///k",
        "FINCORE_API_DATABASE_URL": "sqlite:///api.db",
        "FINCORE_DASHBOARD_SECRET": "x",
        "AWS_SECRET_ACCESS_KEY": "leak",
    }
    env = component_env(COMPONENTS["vault"], _plan(tmp_path), parent)
    assert env["FINCORE_VAULT_KEY_URL"] == "file:///k"
    assert not any(k.startswith(("FINCORE_API_", "FINCORE_DASHBOARD_")) for k in env)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["FINCORE_ZONE"] == "cde"


def test_noncde_process_gets_no_cde_settings(tmp_path: Path) -> None:
    """A non-CDE process sees none of the CDE's settings."""
    parent = {
        "FINCORE_VAULT_KEY_URL": "file:///k",
        "FINCORE_GATEWAY_PSP_KEY": "sk",
        "FINCORE_API_X": "1",
    }
    env = component_env(COMPONENTS["api"], _plan(tmp_path), parent)
    assert env["FINCORE_API_X"] == "1"
    assert not any(k.startswith(("FINCORE_VAULT_", "FINCORE_GATEWAY_PSP")) for k in env)


def test_each_process_gets_only_its_own_key(tmp_path: Path) -> None:
    """Every process is handed its own key and certificate, none of another service's."""
    plan = _plan(tmp_path)
    vault = component_env(COMPONENTS["vault"], plan, {})
    gateway = component_env(COMPONENTS["gateway"], plan, {})
    assert vault["FINCORE_SERVICE_KEY_FILE"].endswith("vault.key")
    assert gateway["FINCORE_SERVICE_KEY_FILE"].endswith("gateway.key")
    assert "gateway.key" not in str(vault)


def test_ports_can_be_overridden(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """FINCORE_PORT_<NAME> moves one component; --port-base moves all."""
    monkeypatch.setenv("FINCORE_PORT_VAULT", "19999")
    assert default_ports()["vault"] == 19999
    monkeypatch.delenv("FINCORE_PORT_VAULT")
    based = default_ports(30000)
    assert sorted(based.values()) == list(range(30000, 30000 + len(based)))
