"""Data-subject rights: requests and their deadlines (``deadlines``), Art. 15 extracts verifiable
offline (``extract``), restriction and objection, erasure, the Art. 30 record, the transfer explainer
and the retention purge (``service``).

Nothing is imported here on purpose: ``gateway extract verify`` runs on a data subject's or an
auditor's machine with the public key only, and must not load the network adapters that the
service needs for its follow-ups.
"""
