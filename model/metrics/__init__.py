"""Evaluation metrics of `python -m model.evaluate`, computed on features alone.

Each module takes arrays (features, class probabilities, embeddings, frames and waveforms) and
returns numbers; the pretrained networks that turn videos into features live in
`model.metrics.networks`, so every metric can be checked on made-up features.
"""
