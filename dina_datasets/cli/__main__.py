"""`python -m dina_datasets.cli ...`: the same as the `dina` command."""

import sys

from dina_datasets.cli import main

sys.exit(main())
