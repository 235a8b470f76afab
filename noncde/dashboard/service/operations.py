"""noncde.dashboard (non-CDE): operations actions: replaying dead-lettered jobs.

A replay puts the chosen jobs back on the platform's queue with fresh attempts; the job
handlers are idempotent (an `unknown` PSP outcome is resolved before any retry), so a replay
can never pay twice. Each replay is audited with the jobs it named (PCI DSS 10.2.1.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from audit.domain import EventType, Outcome
from noncde.dashboard.domain import InvalidInput, StaffUser
from noncde.dashboard.ports import AuditTrail, OperationsReads
from noncde.dashboard.service.context import Origin, staff_actor

MAX_REPLAY = 200


class OperationsAdmin:
    def __init__(self, operations: OperationsReads, audit: AuditTrail) -> None:
        self.operations = operations
        self.audit = audit

    def replay(self, user: StaffUser, job_ids: Sequence[str], origin: Origin) -> int:
        chosen = sorted({j.strip() for j in job_ids if j.strip()})
        if not chosen:
            raise InvalidInput("Choose at least one dead-lettered job.", field="job_id")
        if len(chosen) > MAX_REPLAY:
            raise InvalidInput(f"Replay at most {MAX_REPLAY} jobs at once.", field="job_id")
        known = {job.job_id for job in self.operations.dead_jobs(limit=1000)}
        unknown = [j for j in chosen if j not in known]
        if unknown:
            raise InvalidInput("Some of these jobs are no longer dead-lettered.", field="job_id")
        count = self.operations.replay(chosen)
        self.audit.record(
            EventType.ADMIN_ACTION,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=chosen[0] if len(chosen) == 1 else None,
            resource="dashboard.operations",
            details={"action": "dlq_replay", "jobs": chosen, "replayed": count},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )
        return count
