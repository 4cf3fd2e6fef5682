"""The registry's HTTP layer: controllers, their dependencies and the answer models.

Controllers are wiring between a request and the store; what an answer looks like
(for the contract and the XML form) is declared in `answers.py`.
"""
