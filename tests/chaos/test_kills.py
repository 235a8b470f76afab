"""Chaos: kill -9 of the API, the job worker, the projectionist, the ledger writer, the gateway,
the vault and the card ingress at random moments of a load run (bench/load.py's orders: S2S,
SDK and hosted, retried by the clients with their Idempotency-Keys), each restarted through the
runner. Afterwards every check of a load run holds: one PSP payment and one charge per key,
every charge terminal or dead-lettered with a reason, the ledger balanced and holding the
captured money, LedgerDB and PaymentDB equal to a rebuild, the day reconciled, and a PAN sweep
of the non-CDE stores and logs and the CDE's logs clean."""

from __future__ import annotations

import random
import secrets

import pytest

from bench.load import Target, checks_table, run_checks, run_load
from tests.chaos.harness import KILLED, Killer, chaos_config, run_config_note

pytestmark = pytest.mark.e2e


def kill_during_load(
    platform: Target, names: tuple[str, ...], charges: int, seconds: float, rounds: int
) -> None:
    seed = secrets.randbelow(1 << 30)
    config = chaos_config(charges, seconds, seed)
    print(f"chaos kills: {run_config_note(config)} names={names} rounds={rounds}")
    killer = Killer(
        platform,
        names,
        random.Random(seed),
        window_s=(0.05 * seconds, 0.8 * seconds),
        rounds=rounds,
    )
    result = run_load(platform, config, on_started=killer.start)
    killer.join()
    print(killer.summary())
    assert not killer.errors, killer.errors
    # Every kill landed while orders were still in flight (before the run had settled).
    assert len(killer.kills) == len(names) * rounds
    assert max(k.at_s for k in killer.kills) < result.settled_s, killer.summary()
    checks = run_checks(platform, result, sweep=True)
    print(result.summary())
    print(checks_table(checks))
    assert all(c.ok for c in checks), checks_table(checks)


def test_kill_every_process_once_during_load_short(platform: Target) -> None:
    """Short form (CI): 90 orders over ~25 s, each of the seven processes killed once."""
    kill_during_load(platform, KILLED, charges=90, seconds=25, rounds=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", KILLED)
def test_kill_one_process_repeatedly_during_load(platform: Target, name: str) -> None:
    """400 orders over ~80 s, one process killed four times at random moments."""
    kill_during_load(platform, (name,), charges=400, seconds=80, rounds=4)


@pytest.mark.slow
def test_kill_every_process_repeatedly_during_load(platform: Target) -> None:
    """1,000 orders over ~150 s, each of the seven processes killed three times."""
    kill_during_load(platform, KILLED, charges=1000, seconds=150, rounds=3)
