"""``python -m skbridge``."""

import sys

from skbridge.cli import main

sys.exit(main())
