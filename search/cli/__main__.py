"""`python -m search.cli`: the `search` command."""

import sys

from search.cli import main

sys.exit(main())
