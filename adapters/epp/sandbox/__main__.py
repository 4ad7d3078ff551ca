"""``python -m adapters.epp.sandbox``: the sandbox registry as a process (``--state-dir`` keeps its objects)."""

import sys

from adapters.epp.sandbox.persist import PersistentSandbox
from adapters.epp.sandbox.server import main

sys.exit(main(persistent=PersistentSandbox))
