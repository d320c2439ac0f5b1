"""The Hugging Face side: the schema (`features`), one config's inputs and joins (`source`),
Arrow tables from record buffers (`arrow`), the `datasets` builder (`builder`), `load_dataset`
(`loading`), reading ahead across shards (`readahead`), whole torch batches (`batches`), the
Hub-native Parquet export (`export`) and the dataset card (`card`).
"""
