"""A real EPP registry on loopback for tests and local runs (see ``server``)."""

from adapters.epp.sandbox.server import (
    DEFAULT_PASSWORD,
    CommandRecord,
    Faults,
    FrameValidator,
    RegistrySandbox,
    SandboxThread,
    main,
    schema_dir,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "CommandRecord",
    "Faults",
    "FrameValidator",
    "RegistrySandbox",
    "SandboxThread",
    "main",
    "schema_dir",
]
