"""The DINA explorer (`dina explore`): a local web app over a bucket-shaped folder or URL
and its scores table. Without Gradio: `data` (the `Explorer`: the table, its choices, the
leaderboard), one module per view (`samples`, `comparison`, `rankings`, `reliability`),
`renderers` (the processes that draw maps as `dina show` does), `controls` (the app's
filters), `opening` (the model and metric the page opens on). `app` is the Gradio Blocks.

    from dina_datasets.explore.data import Explorer
    from dina_datasets.explore.app import launch
    launch(Explorer("gs://xai-deel", scores="scores.parquet").open())
"""
