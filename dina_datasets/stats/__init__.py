"""`dina_datasets.stats`: the public name of the statistics of the scores table.

The code lives in `dina_datasets.analysis.stats`; this package only re-exports it, so that
`from dina_datasets import stats; stats.summary(...)` stays the one line a notebook needs.
"""

from dina_datasets.analysis.stats import *  # noqa: F403
from dina_datasets.analysis.stats import __all__  # noqa: F401
