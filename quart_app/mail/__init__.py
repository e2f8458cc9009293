"""Mail that is never lost: an outbox table written in the transaction that decided a
mail, and a background sender that claims each mail once, retries with back-off and
delivers through SMTP (``SMTP_URL``) or as ``.eml`` files (``INSTANCE_PATH/outbox``).

Other features queue mail with :func:`queue_notification` (a notice to a user's verified
address) or :func:`queue_mail` (any address), inside their own transaction.
"""

from __future__ import annotations

from .notify import NOTICES, notify, queue_notification
from .outbox import OutboxStore, queue_mail

__all__ = ["NOTICES", "OutboxStore", "notify", "queue_mail", "queue_notification"]
