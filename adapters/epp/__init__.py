"""EPP (RFC 5730-5734) client for registries, with per-registry extensions.

Public surface (everything else is an implementation detail that may move):

* ``adapters.epp.types`` -- typed commands (``Command[R]``: ContactCreate/Update/Delete,
  ContactInfoQuery, DomainCreate/Update/Delete/Renew/Transfer, DomainInfoQuery, PollRequest/PollAck)
  and results (EppResult, DomainInfo, ContactInfo, RegistrationOutcome, UpdateOutcome, ...), Endpoint;
* ``adapters.epp.extensions`` -- the registry extension values, one module per registry;
* ``adapters.epp.client`` -- ``EppClient`` (one session over a transport; ``send(command)``),
  ``register``/``register_with``/``find_domain``, ``update_domain_with``/``update_contact_with``,
  ``make_cl_trid``/``command_cl_trid``;
* ``adapters.epp.transport`` -- ``Transport``, ``TlsTransport`` and ``RecordingTransport`` (tests);
* ``adapters.epp.pool`` -- ``EppSessionPool`` (bounded, kept alive, rate limited);
* ``adapters.epp.pooled`` -- ``RetryPolicy`` and the pooled, retried ``register_pooled``/
  ``update_domain_pooled``/``update_contact_pooled``/``run_pooled``;
* ``adapters.epp.outcomes`` -- the result-code mapping (what is retried) and ``with_retries``;
* ``adapters.epp.commands`` -- each command type bound to its builder and result;
* ``adapters.epp.xml`` -- the one place frames are built and parsed (used by the sandbox too);
* ``adapters.epp.tls`` -- the dev PKI for the sandbox.

Imports only go down: pooled -> pool -> client -> commands -> xml -> types -> extensions.
"""
