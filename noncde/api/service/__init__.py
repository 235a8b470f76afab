"""noncde.api (non-CDE): the use cases of the merchant API; they talk to ports only.

`PaymentService` (charges, refunds, payment sessions, events, PSP events), `DirectoryService`
(merchants, keys, capabilities, webhook endpoints, risk rules), `RiskEngine` and `Projector`.
"""

from noncde.api.service.directory import DirectoryService, IssuedKey, NewMerchant
from noncde.api.service.payments import Caller, ConcurrentUpdate, PaymentService, Reply
from noncde.api.service.projector import Projector
from noncde.api.service.risk import RiskEngine

__all__ = [
    "Caller",
    "ConcurrentUpdate",
    "DirectoryService",
    "IssuedKey",
    "NewMerchant",
    "PaymentService",
    "Projector",
    "Reply",
    "RiskEngine",
]
