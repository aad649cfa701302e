"""A built corpus: read it, describe it (card, stats), check it, export it, publish it."""
