"""Reference model of "Sound-guided Semantic Video Generation" (ECCV 2022), trained on landscape-av shards."""
