"""Database access: engine, base model, and the revision + entry-version mechanism."""
