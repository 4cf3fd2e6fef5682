"""cdb-service: the Competent-authorities Database of JUDEX / e-CODEX."""

__version__ = "0.1.0"
