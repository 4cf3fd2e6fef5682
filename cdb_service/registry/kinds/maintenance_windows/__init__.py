"""Maintenance windows (Annex I 6.3–6.4): announced in advance, never deleted, cancelled.

`announced_at` is set by the server on creation and never changes; the notice and
preferred-hours fields are derived from the window (see `models.derive`, `probe/calendar.py`).
"""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.maintenance_windows.models import DERIVED, MaintenanceWindow, derive
from cdb_service.registry.kinds.maintenance_windows.schemas import MaintenanceWindowIn
from cdb_service.registry.kinds.spec import KindSpec

SPEC = KindSpec(
    name="maintenance-windows",
    model=MaintenanceWindow,
    schema=MaintenanceWindowIn,
    natural_key="ref",
    natural_key_global=False,
    filters=(Filter("ref", "ref"), Filter("component", "component")),
    server_fields=("announced_at",),
    derived=DERIVED,
    derive=derive,
    never_deleted="a maintenance window is never deleted: cancel it instead "
    '(PUT the window with "cancelled": true)',
)
