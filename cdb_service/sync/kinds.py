"""The kinds of target the agent knows, by the name a `[[targets]]` table gives as `kind`
(the registry's words: `distribution.acknowledgements.TARGET_KINDS`).

A kind is one line here: its name and the factory that makes a target from the table's
name and settings (raising `UserMistake` for a wrong setting).
"""

from __future__ import annotations

from cdb_service.sync import directory
from cdb_service.sync.config import TargetFactory

TARGET_KINDS: dict[str, TargetFactory] = {
    directory.KIND: directory.from_settings,
}
