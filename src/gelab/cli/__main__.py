"""``python -m gelab.cli``: the ``gelab`` command."""

import sys

from gelab.cli import main

sys.exit(main())
