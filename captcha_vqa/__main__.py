"""``python -m captcha_vqa`` works like the ``captcha-vqa`` command."""

import sys

from captcha_vqa.cli import main

sys.exit(main())
