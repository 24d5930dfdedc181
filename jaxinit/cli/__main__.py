"""``python -m jaxinit.cli``: the ``jaxinit`` command."""

import sys

from jaxinit.cli._main import main

sys.exit(main())
