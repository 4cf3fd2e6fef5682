"""Data quality (Annex I 7.6): what an owner's entries lack to be complete, exact and current."""
