"""Joining the published DINA records to their ImageNet images (`dina align`).

The published files carry no image name, and their order is an unseeded shuffle. The order
is recovered by recomputing a cheap explainer of the same model on every local image and
matching each published map to the image whose recomputed map it is (or, with no model, by
matching the published preprocessed inputs to the images preprocessed here):

- `fingerprints`: a map or an input reduced to a small, normalised vector;
- `matching`: nearest neighbours of every record among the images, then a one-to-one
  assignment that never guesses (`matched | ambiguous | unmatched`);
- `recompute`: the fingerprints of the local images (model, explainer, preprocessing
  exactly as generation does); `published`: those of the records, streamed;
- `store`: the resumable parts of a job; `report`: `aligned.json` (kecam's format, record
  order), the report and the CSV;
- `alignment`: the whole job (`align`); `verification`: `--verify` of other configs' order.
"""
