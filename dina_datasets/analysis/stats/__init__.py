"""Statistics of the scores table, for notebooks and the report: each function takes the
table (a Parquet path or URL, a DuckDB relation, a pandas frame, or a `Scores` view) and
returns pandas frames.

    from dina_datasets import stats
    s = stats.summary("scores.parquet")                # mean, median, CI, rank, flags
    p = stats.pairs("scores.parquet", alpha=0.01)      # Wilcoxon, TOST, Holm, verdicts
    stats.detectability(p, alpha=0.01)                 # what the images can tell
    stats.friedman(s); stats.average_ranks(s)          # across models, Nemenyi CD
    stats.metric_agreement(s); stats.model_agreement(s)   # Kendall's tau
    stats.stability("scores.parquet", sizes=(100, 1000))  # how many images a ranking needs
    stats.reliability("scores.parquet").cards          # can I trust the metric? (grades)
    m = stats.check_maps("gs://xai-deel", s)           # degenerate maps, 8 sampled per cell
    stats.summary("scores.parquet", maps=m)            # ... flagged, never ranked

Needs the `stats` extra (duckdb, scipy, scikit-posthocs, statsmodels, pandas); each import
happens inside the function that uses it.
"""

from dina_datasets.analysis.filters import FILTER_HELP
from dina_datasets.analysis.stats.agreement import matrix, metric_agreement, model_agreement
from dina_datasets.analysis.stats.comparisons import ALPHA, RANDOM, annotate, pairs
from dina_datasets.analysis.stats.equivalence import MARGIN
from dina_datasets.analysis.stats.grades import Reliability, reliability
from dina_datasets.analysis.stats.power import detectability
from dina_datasets.analysis.stats.ranking import (
    average_ranks,
    critical_difference,
    friedman,
    nemenyi,
)
from dina_datasets.analysis.stats.sanity import (
    DEGENERATE_SHARE,
    MAP_SAMPLE,
    NEAR_ZERO,
    check_maps,
    degenerate,
    table_maps,
)
from dina_datasets.analysis.stats.subsampling import SIZES, stability
from dina_datasets.analysis.stats.summaries import summary
from dina_datasets.analysis.table import Scores, open_scores

__all__ = ["ALPHA", "DEGENERATE_SHARE", "FILTER_HELP", "MAP_SAMPLE", "MARGIN", "NEAR_ZERO",
           "RANDOM", "SIZES", "Reliability", "Scores", "annotate", "average_ranks",
           "check_maps", "critical_difference", "degenerate", "detectability", "friedman",
           "matrix", "metric_agreement", "model_agreement", "nemenyi", "open_scores", "pairs",
           "reliability", "stability", "summary", "table_maps"]
