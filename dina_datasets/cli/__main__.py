"""`python -m dina_datasets.cli ...`: the same as the `dina` command."""

import sys

from dina_datasets.cli import main

if __name__ == "__main__":
    sys.exit(main())
