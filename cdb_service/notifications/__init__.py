"""Notifications pushed (Annex I 6.4, 6.6, 6.7, 6.9, 6.10): subscriptions, the events the
registry's own writes make, and their delivery as signed webhooks and e-mail.

`tables.py` the subscriptions, the follower's cursor, the deliveries (and dead letters);
`events.py` from entry versions to CloudEvents; `outbox.py` the follower that turns new
revisions into deliveries; `webhooks.py`, `email.py` the two channels; `delivery.py` the
worker (claims, retries with backoff, dead letters); `http.py` the operator's routes.
"""
