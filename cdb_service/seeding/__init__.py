"""The seed dataset: fictional but realistic entries for 27 member states and Eurojust."""
