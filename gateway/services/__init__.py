"""The services: what the HTTP layer and the delivery worker call.

``registrations`` (plan and accept), ``changes`` (push changed fields to past recipients) and
``ledger`` (subjects, sealing, checkpoints, proofs over a store) sit above the pure core and the
store, below ``http/`` and ``delivery/``; data-subject rights live beside them in ``gateway.rights``.
"""
