"""The applications' shared layer: what `model.invert`, `model.edit` and `model.generate` (and the
evaluation harness) stand on, owned by none of them.

- `checkpoint`: a run of model.train (or a bare generator file) -> `Run` (generator, E_a + walker,
  training config, its CLIP and F_a on first use); the one place a run is loaded.
- `photos`: a picture or a saved W+ -> a latent (`photo_latent`: load, or invert under MSE + LPIPS);
  PNG strips.
- `levels`: the coarse / mid / fine `--levels` of W+ edits, mixing at those levels, style mixing.
- `guidance`: CLIP guidance of latents toward text or sound embeddings, of one latent or a walk.
- `edits`: the edit chain (style mixing, sound mixing, CLIP guidance) of `EditOptions`.
- `video`: a sound -> the walk's W+ latents -> frames, in memory (`walk_sound`, `generate_video`).
- `options`: `PhotoOptions`, `EditOptions`, `PhotoCommand` (invert's and edit's common settings)
  and the command-line flags the commands share, worded once.

Each module imports only the ones before it in: options, checkpoint, photos, levels, guidance,
edits (`video` stands apart, on `model.video_model` alone). The commands stay where every model
command lives, `model/<command>.py` (`python -m model.invert`, `model.edit`, `model.generate`, as
`model.train` and `model.evaluate`), so the documented entry points need no forwarding modules:
each holds only its config, its checks and its output, and imports from here, never from another
command.
"""
