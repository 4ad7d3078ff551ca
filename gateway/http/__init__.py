"""The HTTP layer: the JSON API for the ordering system and staff (``api/``), the staff pages
(``pages/``, a sub-application under ``/ui``), problems, OpenAPI, and the shared request context."""
