"""TF-free record I/O: DINA's TFRecord files on numpy and fsspec, nothing else.

One owner per concept:
- `framing`: the TFRecord frame (length, masked CRC-32C) and the one frame checker;
- `proto`: `tf.train.Example` / `TensorProto` wire format;
- `index`: the sidecar offset index written beside the files we write;
- `planner`: the one chunk planner (record ranges -> byte spans), record spans, runs of
  scattered records: pure arithmetic;
- `buffers`: the planned chunks read into (recycled) buffers, a window of ranged requests
  in flight (`readahead.Window`);
- `reader`: where records lie in a file (index, fixed size, scan) and their bytes in order;
- `writer`: records written and published atomically with their index;
- `records`: the public read/write API.

Imports neither `datasets` nor torch nor TensorFlow.
"""
