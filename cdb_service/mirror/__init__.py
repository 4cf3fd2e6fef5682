"""The mirror: a client-side replica of the registry that resolves offline."""
