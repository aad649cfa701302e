"""The build: each source's stages (`source_stages`: download, probe, filter, clip, curate), run by
an engine (`engines`), then the corpus's shards, manifests and build.json (`corpus_writer`) and its
card, all orchestrated by `build` (whose docstring maps the other modules)."""
