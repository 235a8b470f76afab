"""The audit log holds no card data: refused attempts leave nothing, the encoding adds nothing."""

from __future__ import annotations

import pytest

from audit.bootstrap import open_audit_log
from audit.domain import CardDataInAuditDetails, EventType
from tests.integration.audit.conftest import AuditEnv
from tests.integration.audit.sweep import sweep_files

CARDS = ("4242424242424242", "5555 5555 5555 4444", "3782-822463-10005", "6011111111111117")


def test_refused_card_data_leaves_no_trace(audit_env: AuditEnv) -> None:
    """Every attempt to log a card number is refused, and the sweep of the log finds none."""
    with open_audit_log("cde", "vault") as log:
        for card in CARDS:
            with pytest.raises(CardDataInAuditDetails):
                log.record(
                    EventType.TOKENIZE, actor="ingress", outcome="failure", details={"echo": card}
                )
            with pytest.raises(CardDataInAuditDetails):
                log.record(
                    EventType.TOKENIZE, actor="ingress", outcome="failure", reason=f"bad {card}"
                )
        log.record(EventType.TOKENIZE, actor="ingress", outcome="failure", reason="invalid card")
    assert sweep_files(audit_env.audit_dir) == []


def test_hashes_signatures_and_ids_do_not_look_like_cards(audit_env: AuditEnv) -> None:
    """5,000 records of hashes, key ids and signatures give the sweep no false hit."""
    env = {
        **audit_env.env,
        "FINCORE_AUDIT_FSYNC": "batch",
        "FINCORE_AUDIT_CHECKPOINT_RECORDS": "50",
    }
    with open_audit_log("cde", "vault", env=env) as log:
        for n in range(5000):
            log.record(EventType.DETOKENIZE, actor="gateway", outcome="success", target=f"tok_{n}")
    assert sweep_files(audit_env.audit_dir) == []


def test_the_sweep_would_find_a_card_that_got_in(audit_env: AuditEnv) -> None:
    """The sweep is not blind: a card number written behind the library's back is found."""
    with open_audit_log("cde", "vault") as log:
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    with audit_env.records_file().open("ab") as handle:
        handle.write(b'{"note":"4000 0566 5566 5556"}\n')
    found = sweep_files(audit_env.audit_dir)
    assert len(found) == 1
    assert "5556" in found[0] and "4000 0566 5566 5556" not in found[0]
    audit_env.records_file().unlink()  # keep the fixture's own after-test sweep meaningful
