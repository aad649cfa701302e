"""The frozen CLIP wrapper: input handling, normalisation, frozenness, local weights, errors."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from model.clip import TINY_CONFIG, load_clip


@pytest.fixture(scope="module")
def clip():
    return load_clip(None, tiny=True, seed=0)


def test_images_of_any_size_embed_to_unit_vectors(clip) -> None:
    torch.manual_seed(0)
    for shape in [(3, 3, 256, 256), (2, 3, 48, 80)]:
        emb = clip.encode_image(torch.rand(shape) * 2 - 1)
        assert emb.shape == (shape[0], TINY_CONFIG["embed_dim"]) == (shape[0], clip.embed_dim)
        assert torch.allclose(emb.norm(dim=-1), torch.ones(shape[0]), atol=1e-5)


def test_images_get_clip_mean_and_std(clip) -> None:
    white = torch.ones(1, 3, 64, 64)  # [-1, 1] white -> [0, 1] ones -> (1 - mean) / std
    x = clip.preprocess(white)
    assert x.shape == (1, 3, *clip.image_size)
    want = [
        (1 - m) / s
        for m, s in zip(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD, strict=True)
    ]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(want), atol=1e-4)
    # a wide image is centre-cropped, not squashed: its left and right thirds do not show
    wide = torch.full((1, 3, 32, 96), -1.0)
    wide[..., 32:64] = 1.0
    assert torch.allclose(clip.preprocess(wide), x[..., :32, :32], atol=1e-4)


def test_text_embeds_offline_and_consistently(clip) -> None:
    emb = clip.encode_text(
        ["a photo of raining.", "a photo of fire crackling.", "a photo of raining."]
    )
    assert emb.shape == (3, clip.embed_dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(emb[0], emb[2]) and not torch.allclose(emb[0], emb[1])


def test_a_prompts_embedding_does_not_depend_on_the_prompts_beside_it() -> None:
    # a resumed training run meets the prompts in other batches than the uninterrupted run did;
    # batched encoding rounds differently per batch, and the runs would drift apart
    together = load_clip(None, tiny=True, seed=0).encode_text(
        ["a photo of raining.", "a photo of thunderstorm.", "a photo of wind noise."]
    )
    alone = load_clip(None, tiny=True, seed=0).encode_text(["a photo of thunderstorm."])
    assert torch.equal(together[1], alone[0])


def test_frozen_but_differentiable_in_its_image_input(clip) -> None:
    assert not any(p.requires_grad for p in clip.parameters())
    clip.train()
    assert not clip.training and not clip.model.training
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    target = clip.encode_text(["a photo of raining.", "a photo of wind noise."])
    (clip.encode_image(x) * target).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.parameters())


def test_the_same_seed_gives_the_same_tiny_clip() -> None:
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    a, b, c = (load_clip(None, tiny=True, seed=s).encode_image(x) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_weights_load_from_a_local_file(tmp_path: Path) -> None:
    source = load_clip(None, tiny=True, seed=7)
    path = tmp_path / "tiny-clip.pt"
    torch.save(source.model.state_dict(), path)
    loaded = load_clip(path, tiny=True, seed=0)  # the file's weights win over the seed
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode_image(x), source.encode_image(x))
    assert torch.equal(loaded.encode_text(["rain"]), source.encode_text(["rain"]))


class _OpenAIRelease(torch.nn.Module):
    """The parameters of an open_clip model under OpenAI's names, as a TorchScript archive holds
    them (OpenAI's `.pt` release files are scripted modules)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        for name, child in model.named_children():
            setattr(self, name, child)
        for name, param in model.named_parameters(recurse=False):
            self.register_parameter(name, param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_openai_torchscript_release_files_load(tmp_path: Path) -> None:
    # the smallest model OpenAI's loader can rebuild from its weights (64-wide heads)
    config = {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 1,
            "layers": 1,
        },
    }
    torch.manual_seed(3)
    source = open_clip.model.CLIP(**config, quick_gelu=True).eval()  # as OpenAI trained
    with torch.no_grad():
        for param in source.parameters():  # OpenAI's files hold float16 weights
            param.copy_(param.half().float())
    path = tmp_path / "openai.pt"
    torch.jit.script(_OpenAIRelease(source)).save(str(path))
    loaded = load_clip(path, arch="ViT-B-32")  # the file's shapes win over the architecture's
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    reference = load_clip(None, tiny=True)
    reference.model = source
    assert torch.allclose(loaded.encode_image(x), reference.encode_image(x), atol=1e-5)
    assert torch.allclose(loaded.encode_text(["rain"]), reference.encode_text(["rain"]), atol=1e-5)


def test_missing_weights_say_what_is_missing_and_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"no CLIP checkpoint given for ViT-B-32.*openai.*--tiny"
    ):
        load_clip(None)
    with pytest.raises(FileNotFoundError, match="nowhere.pt does not exist"):
        load_clip(tmp_path / "nowhere.pt")
    with pytest.raises(ValueError, match="unknown open_clip architecture 'ViT-Q-99'"):
        load_clip(tmp_path / "nowhere.pt", arch="ViT-Q-99")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot load CLIP weights"):
        load_clip(junk, tiny=True)
