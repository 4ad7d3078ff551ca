"""``python -m adapters.epp.sandbox``: the sandbox registry as a process."""

import sys

from adapters.epp.sandbox.server import main

sys.exit(main())
