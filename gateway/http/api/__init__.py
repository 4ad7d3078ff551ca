"""API handlers, one module per resource, each a ``RouteTableDef``."""
