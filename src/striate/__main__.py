"""``python -m striate`` is the ``striate`` command."""

import sys

from striate.cli.main import main

sys.exit(main())
