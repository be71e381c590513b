"""``python -m bootmanifest``: see :mod:`bootmanifest.cli`."""

import sys

from bootmanifest.cli import main

sys.exit(main())
