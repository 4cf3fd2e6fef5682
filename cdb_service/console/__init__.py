"""The administrators' web console at `/console/`: server-rendered pages on the API's rules.

Sign-in is OpenID Connect (authorization code + PKCE) against the configured issuer;
sessions live in the database; every page asks `security.policy`, every write goes
through the same services as the API (`registry.store.edits`, `EntryWrites`, `Batches`) and
is audited with the signed-in person's name.
"""
