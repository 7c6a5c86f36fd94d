"""Entry point: ``python -m dhss_components.fleet``."""

import sys

from .cli import main

sys.exit(main())
