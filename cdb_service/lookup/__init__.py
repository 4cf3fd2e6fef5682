"""Recipient resolution and the reference data it resolves from."""
