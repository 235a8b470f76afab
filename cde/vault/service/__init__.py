"""cde.vault (CDE): the use cases of the vault, its operators and the card ingress."""

from cde.vault.service.admin import PurgeReport, RekeyReport, RewrapReport, ShredReport, VaultAdmin
from cde.vault.service.ingress import IngressService
from cde.vault.service.keyring import Keyring, SealingKey
from cde.vault.service.vault import MAX_CVC_TTL_S, Caller, VaultService

__all__ = [
    "MAX_CVC_TTL_S",
    "Caller",
    "IngressService",
    "Keyring",
    "PurgeReport",
    "RekeyReport",
    "RewrapReport",
    "SealingKey",
    "ShredReport",
    "VaultAdmin",
    "VaultService",
]
