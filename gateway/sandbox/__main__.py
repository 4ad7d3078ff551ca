"""``python -m gateway.sandbox``: the sandbox registry as a process."""

import sys

from gateway.sandbox.server import main

sys.exit(main())
