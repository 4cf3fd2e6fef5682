"""Pure rules shared by the registry, the lookup and the probe (no database, no HTTP)."""
