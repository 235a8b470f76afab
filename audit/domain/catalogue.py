"""audit (both zones): the one catalogue of audited event types, mapped to PCI DSS 10.2.1.x.

To add an event type: add a member to `EventType` and a line to `_REQUIREMENTS`; a unit test
refuses a member without its requirement. Values are stable strings written into every record,
so a value is never renamed once released (readers accept values they do not know).
"""

from __future__ import annotations

from enum import StrEnum


class Requirement(StrEnum):
    """The PCI DSS sub-requirement an event type serves (10.2.1.1-10.2.1.7, plus review)."""

    CARDHOLDER_DATA_ACCESS = "10.2.1.1"
    ADMINISTRATIVE_ACTION = "10.2.1.2"
    AUDIT_LOG_ACCESS = "10.2.1.3"
    INVALID_LOGICAL_ACCESS = "10.2.1.4"
    IDENTIFICATION_CHANGE = "10.2.1.5"
    AUDIT_LOG_LIFECYCLE = "10.2.1.6"
    SYSTEM_LEVEL_OBJECT = "10.2.1.7"
    LOG_REVIEW = "10.4.1"


class EventType(StrEnum):
    """Every event type an audit record may carry (`<area>.<action>`)."""

    # 10.2.1.1: individual access to cardholder data (the target is a token id, never a PAN).
    TOKENIZE = "card.tokenize"
    DETOKENIZE = "card.detokenize"
    DETOKENIZE_DENIED = "card.detokenize_denied"
    CARD_READ = "card.read"
    CARD_UPDATE = "card.update"
    CARD_REVEAL_ATTEMPT = "card.reveal_attempt"
    CARD_EXPORT = "card.export"
    TOKEN_DELETE = "card.token_delete"  # noqa: S105 - an event name, not a secret
    CVC_DELETE = "card.cvc_delete"
    PSP_CALL = "psp.call"

    # 10.2.1.2: actions by administrative accounts.
    ADMIN_ACTION = "admin.action"
    ADMIN_LOGIN = "admin.login"
    MERCHANT_CONFIG_CHANGE = "admin.merchant_config_change"
    ADMIN_REFUND = "admin.refund"
    RAW_CARD_API_ENABLE = "admin.raw_card_api_enable"
    RAW_CARD_API_DISABLE = "admin.raw_card_api_disable"
    BREAK_GLASS_SESSION = "admin.break_glass_session"

    # 10.2.1.3: access to audit logs (the auditor CLI records every use).
    AUDIT_LOG_READ = "audit.read"
    AUDIT_LOG_SEARCH = "audit.search"
    AUDIT_LOG_VERIFY = "audit.verify"
    AUDIT_LOG_EXPORT = "audit.export"

    # 10.2.1.4: invalid logical access attempts.
    AUTHENTICATION_FAILURE = "access.authentication_failure"
    API_KEY_INVALID = "access.api_key_invalid"
    ACCESS_DENIED = "access.denied"
    SERVICE_IDENTITY_REFUSED = "access.service_identity_refused"
    MTLS_FAILURE = "access.mtls_failure"
    WEBHOOK_VERIFICATION_FAILURE = "psp.webhook_verification_failure"

    # 10.2.1.5: changes to identification and authentication credentials.
    ACCOUNT_CREATE = "identity.account_create"
    ACCOUNT_CHANGE = "identity.account_change"
    ACCOUNT_DELETE = "identity.account_delete"
    ROLE_GRANT = "identity.role_grant"
    ROLE_REVOKE = "identity.role_revoke"
    PASSWORD_RESET = "identity.password_reset"  # noqa: S105 - an event name, not a secret
    API_KEY_CREATE = "identity.api_key_create"
    API_KEY_ROTATE = "identity.api_key_rotate"
    API_KEY_REVOKE = "identity.api_key_revoke"
    CAPABILITY_GRANT = "identity.capability_grant"
    CAPABILITY_REVOKE = "identity.capability_revoke"
    MFA_ENROL = "identity.mfa_enrol"
    MFA_RESET = "identity.mfa_reset"
    SERVICE_CREDENTIAL_ISSUE = "identity.service_credential_issue"

    # 10.2.1.6: initialisation, starting, stopping and pausing of the audit log.
    AUDIT_LOG_INIT = "audit.log_init"
    AUDIT_LOG_START = "audit.log_start"
    AUDIT_LOG_STOP = "audit.log_stop"
    AUDIT_LOG_PAUSE = "audit.log_pause"
    AUDIT_LOG_RESUME = "audit.log_resume"
    AUDIT_LOG_RECOVER = "audit.log_recover"
    AUDIT_CONFIG_CHANGE = "audit.config_change"
    AUDIT_INTEGRITY_ALERT = "audit.integrity_alert"

    # 10.2.1.7: creation and deletion of system-level objects.
    KEY_CREATE = "system.key_create"
    KEY_ROTATE = "system.key_rotate"
    KEY_RETIRE = "system.key_retire"
    KEY_DESTROY = "system.key_destroy"
    MERCHANT_CREATE = "system.merchant_create"
    MERCHANT_DELETE = "system.merchant_delete"
    RULE_CREATE = "system.rule_create"
    RULE_CHANGE = "system.rule_change"
    RULE_DELETE = "system.rule_delete"
    SYSTEM_OBJECT_CREATE = "system.object_create"
    SYSTEM_OBJECT_DELETE = "system.object_delete"
    CONFIG_CHANGE = "system.config_change"

    # 10.4.1: the daily review writes that it ran (an alarm fires when it is older than 26 h).
    LOG_REVIEW_COMPLETED = "log_review.completed"

    @property
    def requirement(self) -> Requirement:
        """The PCI DSS sub-requirement this event type serves."""
        return _REQUIREMENTS[self]


_R = Requirement
_E = EventType
_REQUIREMENTS: dict[EventType, Requirement] = {
    _E.TOKENIZE: _R.CARDHOLDER_DATA_ACCESS,
    _E.DETOKENIZE: _R.CARDHOLDER_DATA_ACCESS,
    _E.DETOKENIZE_DENIED: _R.CARDHOLDER_DATA_ACCESS,
    _E.CARD_READ: _R.CARDHOLDER_DATA_ACCESS,
    _E.CARD_UPDATE: _R.CARDHOLDER_DATA_ACCESS,
    _E.CARD_REVEAL_ATTEMPT: _R.CARDHOLDER_DATA_ACCESS,
    _E.CARD_EXPORT: _R.CARDHOLDER_DATA_ACCESS,
    _E.TOKEN_DELETE: _R.CARDHOLDER_DATA_ACCESS,
    _E.CVC_DELETE: _R.CARDHOLDER_DATA_ACCESS,
    _E.PSP_CALL: _R.CARDHOLDER_DATA_ACCESS,
    _E.ADMIN_ACTION: _R.ADMINISTRATIVE_ACTION,
    _E.ADMIN_LOGIN: _R.ADMINISTRATIVE_ACTION,
    _E.MERCHANT_CONFIG_CHANGE: _R.ADMINISTRATIVE_ACTION,
    _E.ADMIN_REFUND: _R.ADMINISTRATIVE_ACTION,
    _E.RAW_CARD_API_ENABLE: _R.ADMINISTRATIVE_ACTION,
    _E.RAW_CARD_API_DISABLE: _R.ADMINISTRATIVE_ACTION,
    _E.BREAK_GLASS_SESSION: _R.ADMINISTRATIVE_ACTION,
    _E.AUDIT_LOG_READ: _R.AUDIT_LOG_ACCESS,
    _E.AUDIT_LOG_SEARCH: _R.AUDIT_LOG_ACCESS,
    _E.AUDIT_LOG_VERIFY: _R.AUDIT_LOG_ACCESS,
    _E.AUDIT_LOG_EXPORT: _R.AUDIT_LOG_ACCESS,
    _E.AUTHENTICATION_FAILURE: _R.INVALID_LOGICAL_ACCESS,
    _E.API_KEY_INVALID: _R.INVALID_LOGICAL_ACCESS,
    _E.ACCESS_DENIED: _R.INVALID_LOGICAL_ACCESS,
    _E.SERVICE_IDENTITY_REFUSED: _R.INVALID_LOGICAL_ACCESS,
    _E.MTLS_FAILURE: _R.INVALID_LOGICAL_ACCESS,
    _E.WEBHOOK_VERIFICATION_FAILURE: _R.INVALID_LOGICAL_ACCESS,
    _E.ACCOUNT_CREATE: _R.IDENTIFICATION_CHANGE,
    _E.ACCOUNT_CHANGE: _R.IDENTIFICATION_CHANGE,
    _E.ACCOUNT_DELETE: _R.IDENTIFICATION_CHANGE,
    _E.ROLE_GRANT: _R.IDENTIFICATION_CHANGE,
    _E.ROLE_REVOKE: _R.IDENTIFICATION_CHANGE,
    _E.PASSWORD_RESET: _R.IDENTIFICATION_CHANGE,
    _E.API_KEY_CREATE: _R.IDENTIFICATION_CHANGE,
    _E.API_KEY_ROTATE: _R.IDENTIFICATION_CHANGE,
    _E.API_KEY_REVOKE: _R.IDENTIFICATION_CHANGE,
    _E.CAPABILITY_GRANT: _R.IDENTIFICATION_CHANGE,
    _E.CAPABILITY_REVOKE: _R.IDENTIFICATION_CHANGE,
    _E.MFA_ENROL: _R.IDENTIFICATION_CHANGE,
    _E.MFA_RESET: _R.IDENTIFICATION_CHANGE,
    _E.SERVICE_CREDENTIAL_ISSUE: _R.IDENTIFICATION_CHANGE,
    _E.AUDIT_LOG_INIT: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_LOG_START: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_LOG_STOP: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_LOG_PAUSE: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_LOG_RESUME: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_LOG_RECOVER: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_CONFIG_CHANGE: _R.AUDIT_LOG_LIFECYCLE,
    _E.AUDIT_INTEGRITY_ALERT: _R.AUDIT_LOG_LIFECYCLE,
    _E.KEY_CREATE: _R.SYSTEM_LEVEL_OBJECT,
    _E.KEY_ROTATE: _R.SYSTEM_LEVEL_OBJECT,
    _E.KEY_RETIRE: _R.SYSTEM_LEVEL_OBJECT,
    _E.KEY_DESTROY: _R.SYSTEM_LEVEL_OBJECT,
    _E.MERCHANT_CREATE: _R.SYSTEM_LEVEL_OBJECT,
    _E.MERCHANT_DELETE: _R.SYSTEM_LEVEL_OBJECT,
    _E.RULE_CREATE: _R.SYSTEM_LEVEL_OBJECT,
    _E.RULE_CHANGE: _R.SYSTEM_LEVEL_OBJECT,
    _E.RULE_DELETE: _R.SYSTEM_LEVEL_OBJECT,
    _E.SYSTEM_OBJECT_CREATE: _R.SYSTEM_LEVEL_OBJECT,
    _E.SYSTEM_OBJECT_DELETE: _R.SYSTEM_LEVEL_OBJECT,
    _E.CONFIG_CHANGE: _R.SYSTEM_LEVEL_OBJECT,
    _E.LOG_REVIEW_COMPLETED: _R.LOG_REVIEW,
}

# Groups the daily review (10.4.1) reads; kept here so a new member lands in its group.
CARD_ACCESS_EVENTS = frozenset(
    e for e in EventType if _REQUIREMENTS[e] is Requirement.CARDHOLDER_DATA_ACCESS
)
ADMIN_EVENTS = frozenset(
    e for e in EventType if _REQUIREMENTS[e] is Requirement.ADMINISTRATIVE_ACTION
)
INVALID_ACCESS_EVENTS = frozenset(
    e for e in EventType if _REQUIREMENTS[e] is Requirement.INVALID_LOGICAL_ACCESS
) | {EventType.DETOKENIZE_DENIED, EventType.CARD_REVEAL_ATTEMPT}
IDENTIFICATION_EVENTS = frozenset(
    e for e in EventType if _REQUIREMENTS[e] is Requirement.IDENTIFICATION_CHANGE
)
LIFECYCLE_EVENTS = frozenset(
    e for e in EventType if _REQUIREMENTS[e] is Requirement.AUDIT_LOG_LIFECYCLE
)
KEY_EVENTS = frozenset(
    {EventType.KEY_CREATE, EventType.KEY_ROTATE, EventType.KEY_RETIRE, EventType.KEY_DESTROY}
)


def requirement_of(event_type: str) -> Requirement | None:
    """The requirement of a stored event type value; None for a value this version does not know."""
    try:
        return _REQUIREMENTS[EventType(event_type)]
    except ValueError:
        return None
