"""The Hugging Face side: the schema (`features`), one config's inputs and joins (`source`),
Arrow tables from record buffers (`arrow`), the `datasets` builder (`builder`) and its
prepared caches found again offline (`caches`), `load_dataset` (`loading`), reading ahead
across shards (`readahead`), whole torch batches (`batches`), the Hub-native Parquet export
(`export`), its all-or-nothing swap of shards (`staging`), the check before an upload
(`audit`) and the dataset card (`card`).
"""
