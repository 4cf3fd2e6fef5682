"""Every table, imported once so that the metadata is complete (migrations, drift checks)."""

from cdb_service.console.sessions import ConsoleSession
from cdb_service.db.base import Base
from cdb_service.db.personal import PersonalData
from cdb_service.db.revisions import EntryVersion, RegistryHead, Revision
from cdb_service.db.write_check import WriteCheck
from cdb_service.distribution.acknowledgements import Acknowledgement
from cdb_service.lookup.gazetteer import GazetteerLoad, GazetteerPlace
from cdb_service.notifications.tables import Delivery, NotificationCursor, Subscription
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.idempotency import IdempotencyKey
from cdb_service.security.audit import AuditEvent, AuditHead
from cdb_service.security.consultations import Consultation

__all__ = [
    "KINDS",
    "Acknowledgement",
    "AuditEvent",
    "AuditHead",
    "Base",
    "ConsoleSession",
    "Consultation",
    "Delivery",
    "EntryVersion",
    "GazetteerLoad",
    "GazetteerPlace",
    "IdempotencyKey",
    "NotificationCursor",
    "PersonalData",
    "RegistryHead",
    "Revision",
    "Subscription",
    "WriteCheck",
]
metadata = Base.metadata
