"""The ``gateway`` command line (``main``): serve, run, check-config, hash-token, and the staff,
ledger and extract sub-commands.  Imports nothing, so ``python -m gateway.cli.rights`` (the offline
extract verifier) loads only what verification needs."""
