"""``python -m vqa`` runs the ``vqa`` command."""

import sys

from vqa.cli import main

sys.exit(main())
