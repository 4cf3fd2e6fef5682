"""The versioned store: reads, single writes, batches and edits of any kind's entries.

Every kind goes through the same mechanics here, driven by its `KindSpec`: references
and natural keys, the unit of work (revision, audit, error translation), idempotency
keys, filters applied to rows, validation against the kind's schema.
"""
