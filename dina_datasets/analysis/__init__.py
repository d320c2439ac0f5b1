"""The analysis layer: what the scores say.

- `scores`: the scores table (one row per image, explainer, metric, activation) built from a
  bucket's score files;
- `table`: the DuckDB view over that table (filters, directions, ordering);
- `stats`: the statistics (summaries, pairwise comparisons, ranks across models,
  agreement, subsampling stability, the sanity floor), public as `dina_datasets.stats`;
- `leaderboard`, `report`: the tables and the report a person reads;
- `cost`: the cost records of a bucket against its scores.

Needs the `stats` extra for the statistics; reads through `dina_datasets.storage` only.
"""
