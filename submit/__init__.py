"""The producer side: what upstream systems and operators use to send payment requests.

This package never touches the database tables: it validates and sends messages, and reads outcomes through
the processor's services.
"""

from processor.domain.errors import InvalidRequest
from submit.client import Client, NotSent, new_reference

__all__ = ["Client", "InvalidRequest", "NotSent", "new_reference"]
