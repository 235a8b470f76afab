"""The staff store contract, run against every adapter: memory, SQLite and PostgreSQL.

Unique user names (PCI DSS 8.2.1), atomic failure counting (8.3.4), one-time TOTP steps
(8.5.1), one-time session promotion, compare-and-set refund decisions (four eyes), one-time
OIDC states, and no secret stored in the clear."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fincore.pan_sweep import sweep_sqlite
from noncde.dashboard.adapters.memory import MemoryStaffStore
from noncde.dashboard.adapters.sql import SqlStaffStore
from noncde.dashboard.domain import (
    AuthMethod,
    Conflict,
    LockoutPolicy,
    RefundRequest,
    RefundRequestStatus,
    Role,
    Session,
    SessionStage,
    StaffUser,
    UserStatus,
)
from noncde.dashboard.domain.reconciliation import Resolution, ResolutionStatus
from noncde.dashboard.ports import StaffStore
from noncde.platform.adapters.sql.schema import SqlDatabase

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _user(name: str = "alice", **kw: object) -> StaffUser:
    values: dict[str, object] = {
        "id": f"stf_{name}",
        "username": name,
        "role": Role.SUPPORT,
        "status": UserStatus.ACTIVE,
        "created_at": NOW,
        "password_hash": "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "totp_sealed": "v1.sealed-seed",
    }
    values.update(kw)
    return StaffUser(**values)  # type: ignore[arg-type]


def _session(key: str, user_id: str = "stf_alice", **kw: object) -> Session:
    values: dict[str, object] = {
        "key": key,
        "user_id": user_id,
        "stage": SessionStage.ACTIVE,
        "method": AuthMethod.PASSWORD,
        "created_at": NOW,
        "last_seen_at": NOW,
        "csrf_token": "csrf-" + key,
    }
    values.update(kw)
    return Session(**values)  # type: ignore[arg-type]


def _refund(rid: str, at: datetime = NOW, charge: str = "ch_1") -> RefundRequest:
    return RefundRequest(
        id=rid,
        charge_id=charge,
        merchant_id="mer_1",
        amount=100,
        currency="usd",
        reason="asked",
        requested_by="sam",
        requested_at=at,
    )


def _race(count: int, action: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = action(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class StaffStoreContract:
    """Every StaffStore adapter passes these."""

    @pytest.fixture
    def store(self) -> Iterator[StaffStore]:
        raise NotImplementedError

    def test_user_names_are_unique(self, store: StaffStore) -> None:
        """PCI DSS 8.2.1: a second account with the same name is refused."""
        store.add_user(_user())
        with pytest.raises(Conflict):
            store.add_user(_user(id="stf_other"))
        assert [u.username for u in store.list_users()] == ["alice"]
        assert store.find_user("alice") == store.get_user("stf_alice") == _user()

    def test_save_user_round_trips_every_field(self, store: StaffStore) -> None:
        """Everything an account holds survives a save (history, times, flags)."""
        store.add_user(_user())
        changed = replace(
            _user(),
            role=Role.ADMIN,
            status=UserStatus.DISABLED,
            must_change_password=False,
            password_changed_at=NOW,
            mfa_enrolled_at=NOW,
            last_login_at=NOW + timedelta(seconds=1),
            password_history=("h1", "h2"),
        )
        store.save_user(changed)
        assert store.get_user("stf_alice") == changed

    def test_a_used_totp_step_is_used_once_even_under_a_race(self, store: StaffStore) -> None:
        """Of eight logins racing with the same code, exactly one wins (no replay)."""
        store.add_user(_user())
        results = _race(8, lambda _i: store.use_totp_step("stf_alice", 1000))
        assert results.count(True) == 1
        assert not store.use_totp_step("stf_alice", 999)
        assert store.use_totp_step("stf_alice", 1001)

    def test_saving_a_stale_copy_never_moves_the_used_step_back(self, store: StaffStore) -> None:
        """A save from a copy read before a login keeps the newer step; a new seed resets."""
        store.add_user(_user())
        stale = store.get_user("stf_alice")
        assert stale is not None
        store.use_totp_step("stf_alice", 500)
        store.save_user(replace(stale, last_login_at=NOW))
        assert store.get_user("stf_alice").totp_last_step == 500  # type: ignore[union-attr]
        store.save_user(replace(stale, totp_sealed="v1.new-seed", totp_last_step=0))
        assert store.get_user("stf_alice").totp_last_step == 0  # type: ignore[union-attr]

    def test_failures_are_counted_atomically_and_lock_at_the_threshold(
        self, store: StaffStore
    ) -> None:
        """Twelve concurrent failures count twelve; the lock starts at the tenth."""
        policy = LockoutPolicy()
        _race(12, lambda _i: store.record_failure("bob", NOW, policy))
        guard = store.guard("bob")
        assert guard is not None and guard.failures == 12
        assert guard.locked_until == NOW + timedelta(minutes=30)
        store.clear_guard("bob")
        assert store.guard("bob") is None

    def test_sessions(self, store: StaffStore) -> None:
        """Add, touch (never backwards), step-up mark, delete one, all but one, and purge."""
        store.add_session(_session("k1"))
        store.add_session(_session("k2"))
        store.add_session(_session("k3", user_id="stf_bob"))
        store.touch_session("k1", NOW + timedelta(minutes=5))
        store.touch_session("k1", NOW + timedelta(minutes=1))
        assert store.get_session("k1").last_seen_at == NOW + timedelta(minutes=5)  # type: ignore[union-attr]
        store.mark_mfa("k1", NOW + timedelta(minutes=6))
        assert store.get_session("k1").mfa_at == NOW + timedelta(minutes=6)  # type: ignore[union-attr]
        assert store.delete_user_sessions("stf_alice", keep="k1") == 1
        assert store.get_session("k2") is None and store.get_session("k1") is not None
        assert store.purge_sessions(NOW + timedelta(minutes=1)) == 1
        assert store.get_session("k3") is None
        store.delete_session("k1")
        assert store.get_session("k1") is None

    def test_a_pending_session_is_promoted_once(self, store: StaffStore) -> None:
        """Two code submissions racing on one pending session: one new session only."""
        store.add_session(_session("pending", stage=SessionStage.MFA))
        results = _race(6, lambda i: store.replace_session("pending", _session(f"active{i}")))
        assert results.count(True) == 1
        winner = results.index(True)
        assert store.get_session(f"active{winner}") is not None
        assert store.get_session("pending") is None

    def test_refund_requests_are_decided_once(self, store: StaffStore) -> None:
        """Compare-and-set: of two approvers racing, one decides; lists are newest first."""
        store.add_refund_request(_refund("rfr_a", NOW))
        store.add_refund_request(_refund("rfr_b", NOW + timedelta(seconds=1), charge="ch_2"))
        pending = store.get_refund_request("rfr_a")
        assert pending is not None
        approvals = _race(
            5,
            lambda i: store.update_refund_request(
                pending.approve(f"fin{i}", NOW), RefundRequestStatus.PENDING
            ),
        )
        assert approvals.count(True) == 1
        stored = store.get_refund_request("rfr_a")
        assert stored is not None and stored.status is RefundRequestStatus.APPROVED
        assert [r.id for r in store.list_refund_requests()] == ["rfr_b", "rfr_a"]
        assert [r.id for r in store.list_refund_requests(status=RefundRequestStatus.PENDING)] == [
            "rfr_b"
        ]
        assert [r.id for r in store.list_refund_requests(charge_id="ch_1")] == ["rfr_a"]

    def test_resolutions_are_kept_per_day_and_replaced(self, store: StaffStore) -> None:
        """The latest resolution of a mismatch wins; other days are apart."""
        day = NOW.date()
        first = Resolution(
            day, "amount_mismatch:pi_1", ResolutionStatus.INVESTIGATING, "", "fin", NOW
        )
        store.set_resolution(first)
        later = replace(
            first, status=ResolutionStatus.RESOLVED, note="credit note", at=NOW + timedelta(hours=1)
        )
        store.set_resolution(later)
        store.set_resolution(replace(first, day=day - timedelta(days=1)))
        assert store.resolutions(day) == {"amount_mismatch:pi_1": later}
        assert store.resolutions(day - timedelta(days=2)) == {}

    def test_login_states_are_one_time_and_expire(self, store: StaffStore) -> None:
        """An OIDC state is read once; a stale one is refused."""
        store.put_login_state("s1", {"nonce": "n", "code_verifier": "v"}, NOW)
        assert store.take_login_state("s1", NOW - timedelta(minutes=10)) == {
            "nonce": "n",
            "code_verifier": "v",
        }
        assert store.take_login_state("s1", NOW - timedelta(minutes=10)) is None
        store.put_login_state("s2", {"nonce": "n"}, NOW)
        assert store.take_login_state("s2", NOW + timedelta(seconds=1)) is None


class TestMemoryStaffStore(StaffStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[StaffStore]:
        made = MemoryStaffStore()
        yield made
        made.close()


class TestSqliteStaffStore(StaffStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StaffStore]:
        made = SqlStaffStore(SqlDatabase(f"sqlite:///{tmp_path / 'dashboard.db'}"))
        yield made
        made.close()

    def test_the_database_holds_no_card_data_or_clear_secrets(
        self, store: StaffStore, tmp_path: Path
    ) -> None:
        """A PAN sweep of the store finds nothing; the password is kept as its hash."""
        store.add_user(_user())
        store.add_session(_session("k1"))
        store.add_refund_request(_refund("rfr_a"))
        assert sweep_sqlite(tmp_path / "dashboard.db") == []
        user = store.get_user("stf_alice")
        assert user is not None and user.password_hash.startswith("$argon2id$")  # type: ignore[union-attr]


@pytest.mark.postgres
class TestPostgresStaffStore(StaffStoreContract):
    @pytest.fixture
    def store(self, fresh_postgres_url: Callable[[], str]) -> Iterator[StaffStore]:
        made = SqlStaffStore(SqlDatabase(fresh_postgres_url()))
        yield made
        made.close()
