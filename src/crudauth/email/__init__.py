"""Recovery flows: verify the recovery factor, reset a password, change the email address."""

from crudauth.email.config import EmailConfig
from crudauth.email.delivery import (
    DeliveryChannel,
    DeliveryIntent,
    DeliveryKind,
    EmailChannel,
    EmailContext,
    EmailSender,
)
from crudauth.email.service import EmailFlowResult, EmailFlowService

__all__ = [
    "DeliveryChannel",
    "DeliveryIntent",
    "DeliveryKind",
    "EmailChannel",
    "EmailConfig",
    "EmailContext",
    "EmailFlowResult",
    "EmailFlowService",
    "EmailSender",
]
