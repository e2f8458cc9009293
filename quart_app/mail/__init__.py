"""Mail that is never lost: an outbox table written in the transaction that decided a
mail, and a background sender that claims each mail once, retries with back-off and
delivers through SMTP (``SMTP_URL``) or as ``.eml`` files (``INSTANCE_PATH/outbox``).

Recording a security event that has a notice (:data:`EVENT_NOTICES`) queues it; other
mail is queued with :func:`queue_notification` (a notice to a user's verified address)
or :func:`queue_mail` (any address), inside the caller's own transaction.
"""

from __future__ import annotations

from .notify import EVENT_NOTICES, NOTICES, notify_events, queue_notification
from .outbox import OutboxStore, queue_mail

__all__ = [
    "EVENT_NOTICES",
    "NOTICES",
    "OutboxStore",
    "notify_events",
    "queue_mail",
    "queue_notification",
]
