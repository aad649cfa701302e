"""StyleGAN3 generator in plain PyTorch: exact, loads NVIDIA's checkpoints, no custom CUDA ops.

from model.stylegan3 import Generator, load_generator, save_generator
G = load_generator("network-snapshot-000000.pkl")  # or our own .safetensors
ws = G.mapping(z, None, truncation_psi=0.7)  # [N, G.num_ws, G.w_dim]
img = G.synthesis(ws)  # [N, 3, R, R] in about [-1, 1]
"""

from model.stylegan3.checkpoint import load_generator, read_config, save_generator
from model.stylegan3.networks import Generator, MappingNetwork, SynthesisNetwork

__all__ = [
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "load_generator",
    "read_config",
    "save_generator",
]
