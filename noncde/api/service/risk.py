"""noncde.api (non-CDE): the risk engine, synchronous, on rules from the platform's RulesStore.

Rules are re-read when their version changes (checked at most every `check_interval_s`), so a
published rule set takes effect without a restart. Velocity counts come from the Counters port
and include the charge being assessed; the increments are recorded only after the charge is
committed (`record`), so an idempotent replay never counts twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from fincore.logs import get_logger
from noncde.api.domain.risk import (
    InvalidRules,
    RiskAssessment,
    RiskInput,
    RiskPolicy,
    VelocitySeries,
    parse_rules,
)
from noncde.api.ports import Counters
from noncde.platform.ports import RulesStore
from noncde.platform.service import RulesCache


class RiskEngine:
    """Assesses charges against the active rule set."""

    def __init__(
        self,
        rules: RulesStore,
        counters: Counters,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = RulesCache(rules, check_interval_s)
        self._counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self._policy = RiskPolicy(version=-1)
        self._log = get_logger("api.risk")

    def policy(self) -> RiskPolicy:
        """The parsed active rule set (a rule set that does not parse keeps the previous one)."""
        rule_set = self._cache.current()
        if rule_set.version == self._policy.version:
            return self._policy
        with self._lock:
            if rule_set.version != self._policy.version:
                try:
                    self._policy = parse_rules(list(rule_set.rules), rule_set.version)
                except InvalidRules as exc:
                    # Publishing validates rules, so this is a set written around the CLI: keep
                    # enforcing the last good rules rather than none at all.
                    self._log.error(
                        "risk rules invalid; keeping the previous set",
                        version=rule_set.version,
                        error=str(exc),
                    )
                    if self._policy.version < 0:
                        self._policy = RiskPolicy(version=rule_set.version)
        return self._policy

    def assess(self, charge: RiskInput) -> tuple[RiskAssessment, list[VelocitySeries]]:
        """The decision for `charge` and the velocity series to `record` once it is stored."""
        policy = self.policy()
        series = policy.velocity_series(charge)
        counts = self._counters.count(series, self._clock()) if series else {}
        including_this = {key: count + 1 for key, count in counts.items()}
        return policy.evaluate(charge, including_this), series

    def record(self, series: Sequence[VelocitySeries]) -> None:
        """Count the committed charge in its velocity series (best effort)."""
        if not series:
            return
        try:
            self._counters.add(series, self._clock())
        except Exception as exc:  # noqa: BLE001 - the charge is committed; counting is advisory
            self._log.warning("velocity not recorded", error=type(exc).__name__)
