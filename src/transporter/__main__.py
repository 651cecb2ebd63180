"""``python -m transporter`` is the same as the ``transporter`` command."""

import sys

from transporter.cli import main

sys.exit(main())
