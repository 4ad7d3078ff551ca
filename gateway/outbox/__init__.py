"""What gets queued for delivery, typed: the payload of each outbox row, its JSON form and digest.

``payloads`` (the payload types, ``decode``, the digest and the sealing's associated data), ``epp``
(EPP commands built from released values, and their JSON codec) and ``escrow`` (a queued record as
the escrow deposit holds it).  Pure: it sits above the core and the adapters' types, beside the store,
below the services that queue payloads and the delivery worker that sends them.
"""
