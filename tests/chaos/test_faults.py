"""Chaos: every PSP sandbox fault switched on during a load run (bench/load.py's orders): added
latency, held answers (the payment exists, its answer is lost: an unknown outcome at the
gateway), 5xx, and dropped, duplicated and out-of-order webhooks. Afterwards every check of a
load run holds.

A dropped `checkout.session.completed` is the one fault FinCore cannot see by itself (the PSP
believes it delivered the event): the test checks that the day's reconciliation reports exactly
those payments as missing in the ledger, then resends the events as an operator would, after
which every check holds."""

from __future__ import annotations

import secrets

import pytest

from bench.load import Check, Target, checks_table, run_checks, run_load
from tests.chaos.harness import (
    FAULTS,
    FaultPlan,
    api_fault_evidence,
    chaos_config,
    lost_completions,
    reconciliation_flags,
    recover_lost_completions,
    run_config_note,
    settle_all_but,
    webhook_fault_evidence,
)

pytestmark = pytest.mark.e2e


def faults_during_load(
    platform: Target, faults: tuple[str, ...], charges: int, seconds: float, each_s: float
) -> None:
    seed = secrets.randbelow(1 << 30)
    # More hosted orders than usual: the webhook faults matter most to them.
    config = chaos_config(charges, seconds, seed, mix=(0.35, 0.3, 0.35))
    print(f"chaos faults: {run_config_note(config)} faults={faults} each={each_s}s")
    plan = FaultPlan(platform, faults, start_s=1.0, each_s=each_s)
    try:
        result = run_load(platform, config, on_started=plan.start, settle_after=False)
        plan.join(seconds + 60)
    finally:
        plan.stop()
    assert not plan.errors, plan.errors
    assert [name for _, name in plan.applied] == list(faults)
    # Each fault bit: the sandbox's access log and its webhook deliveries show it.
    bitten = api_fault_evidence(platform, result.started) + webhook_fault_evidence(
        platform, result.started
    )
    print(f"fault effects seen: {dict(bitten)}")
    for name in faults:
        if name != "webhook_out_of_order":  # reordering leaves no trace to count
            assert bitten[name] > 0, (name, dict(bitten))
    lost = lost_completions(platform, result)
    settle_all_but(platform, result, [order for order, _ in lost])
    flagged: list[Check] = []
    if "webhook_drop" in faults:
        flagged.append(reconciliation_flags(platform, [order for order, _ in lost]))
    else:
        assert lost == []
    recover_lost_completions(platform, result, lost)
    checks = flagged + run_checks(platform, result, sweep=True)
    print(result.summary())
    print(f"faults applied at {[(round(t, 1), n) for t, n in plan.applied]}; {len(lost)} lost")
    print(checks_table(checks))
    assert all(c.ok for c in checks), checks_table(checks)


def test_every_sandbox_fault_during_load_short(platform: Target) -> None:
    """Short form (CI): 100 orders over ~32 s, each fault on for 5 s in turn."""
    faults_during_load(platform, tuple(FAULTS), charges=100, seconds=32, each_s=5)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_one_sandbox_fault_through_a_load_run(platform: Target, fault: str) -> None:
    """300 orders over ~60 s with one fault on for 50 s of it."""
    faults_during_load(platform, (fault,), charges=300, seconds=60, each_s=50)
