"""Run bookkeeping shared by generation and evaluation: how a long job is cut into parts,
resumed, sharded and recorded.

- `parts`: the part plan, shards, the generation manifest and its resume rules;
- `score_parts`: the parts of an evaluation run and the settings file they are bound to;
- `cost`: the cost records (`dina-cost/1`) both kinds of run write.

Imports no TensorFlow; reads and writes through `dina_datasets.storage`.
"""
