"""landscape-av: build the Landscape audio-video corpus as WebDataset shards."""

__version__ = "0.1.0"
