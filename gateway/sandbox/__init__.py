"""``python -m gateway.sandbox``: the registry sandbox under the gateway's name (the server itself is
``adapters.epp.sandbox``); both take the gateway's defaults, so the two started with defaults log in."""
