"""Run bookkeeping shared by generation and evaluation: how a long job is cut into parts,
resumed, sharded and recorded.

- `parts`: the part plan, shards, the generation manifest and its resume rules;
- `score_parts`: the parts of an evaluation run and the settings file they are bound to;
- `cost`: the cost records (`dina-cost/1`) both kinds of run write;
- `settings`: the settings file beside each score file (`dina-score-settings/1`) and its id;
- `progress`: a run's progress, as a bar on a terminal or as plain lines in a log.

Imports no TensorFlow; reads and writes through `dina_datasets.storage`.
"""
