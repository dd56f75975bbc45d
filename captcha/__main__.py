"""``python -m captcha`` works like the ``captcha`` command."""

import sys

from captcha.cli import main

sys.exit(main())
