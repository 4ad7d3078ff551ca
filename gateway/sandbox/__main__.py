"""``python -m gateway.sandbox``: the same process as ``python -m adapters.epp.sandbox``."""

import sys

from adapters.epp.sandbox.persist import PersistentSandbox
from adapters.epp.sandbox.server import main

sys.exit(main(persistent=PersistentSandbox))
