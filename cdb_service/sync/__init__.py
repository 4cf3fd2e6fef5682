"""`cdb-service connector-sync`: the agent beside an access point (issue 28 item 3).

It fetches the registry's configuration packages for its party (the current one and the
next), verifies them offline, applies each at its `effective_from` to the targets it is
configured for (a connector 4.x directory, a Domibus gateway, a connector-ng) and
acknowledges what each target took. It talks HTTP to the registry, as the mirror and the
probe do, and shares none of the service's parts.
"""
