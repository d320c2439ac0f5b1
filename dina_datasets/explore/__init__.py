"""The DINA explorer (`dina explore`): a local web app over a bucket-shaped folder or URL
and its scores table. `data` (no Gradio) reads and draws; `app` is the Gradio Blocks.

    from dina_datasets.explore.data import Explorer
    from dina_datasets.explore.app import launch
    launch(Explorer("gs://xai-deel", scores="scores.parquet").open())
"""
