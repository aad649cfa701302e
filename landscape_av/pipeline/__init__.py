"""The build: download, probe, filter, clip and shard each source into the corpus."""
