"""A built corpus: read it, describe it (card, stats), check it, export it, publish it."""

from landscape_av.corpus.corpus import Corpus, Sample, read_shard

__all__ = ["Corpus", "Sample", "read_shard"]
