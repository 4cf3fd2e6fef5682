"""Why the mirror stops what it is doing; the follower decides what comes next."""

from __future__ import annotations

from cdb_service.db.replica import Diverged

__all__ = ["Diverged", "ExtractRefused", "FeedGone", "ForeignDatabase", "MirrorError"]


class MirrorError(Exception):
    pass


class ExtractRefused(MirrorError):
    """The extract does not verify, does not fit, or is not the whole registry: nothing applied."""


class FeedGone(MirrorError):
    """The feed cannot continue from the mirror's revision: take a fresh extract."""


class ForeignDatabase(MirrorError):
    """The database holds revisions the mirror did not write: it is not a mirror."""
