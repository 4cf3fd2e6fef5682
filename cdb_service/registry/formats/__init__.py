"""Entries as files (NDJSON, CSV, XLSX), both ways: uploads parsed into a batch, exports written.

One place for the formats, so that the CLI, the API and the console read and write
the same shape and an export re-imports as a no-op whichever way it travelled.
"""
