"""``python -m tests.bench`` (``make bench``): see tests/bench/run.py for the options."""

import sys

from tests.bench.run import main

sys.exit(main())
