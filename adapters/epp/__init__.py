"""EPP (RFC 5730-5734) client for registries, with per-registry extensions.

Public surface (everything else is an implementation detail that may move):

* ``adapters.epp.types`` -- typed commands and results (ContactCreate/Update/Delete, DomainCreate/
  Update/Delete/Renew/Transfer, PollRequest/PollAck, EppResult, RegistrationOutcome, UpdateOutcome,
  TransferResult, RenewResult, PollResult, the registry extension values, Endpoint);
* ``adapters.epp.client`` -- ``EppClient`` (one session), ``register``/``register_with``/
  ``find_domain``, the pooled and retried ``register_pooled``/``update_domain_pooled``/
  ``update_contact_pooled``/``run_pooled``, ``make_cl_trid``/``command_cl_trid``;
* ``adapters.epp.pool`` -- ``EppSessionPool`` (bounded, kept alive, rate limited);
* ``adapters.epp.outcomes`` -- the result-code mapping and ``with_retries``;
* ``adapters.epp.xml`` -- the one place frames are built and parsed (used by the sandbox too);
* ``adapters.epp.tls`` -- the dev PKI for the sandbox.
"""
