"""``python -m harness.study``: run the study's environments that have no results yet."""

import sys

from harness.study.driver import main

sys.exit(main())
