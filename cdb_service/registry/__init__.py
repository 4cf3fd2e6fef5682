"""The registry: one package per kind, and the mechanics they share."""
