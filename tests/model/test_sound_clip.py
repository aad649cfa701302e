"""F_a and its contrastive loss: shapes, temperature, hand-computed loss values, gradients, overfit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from model.clip import load_clip
from model.sound_clip import (
    SoundClip,
    SoundClipConfig,
    info_nce,
    load_sound_clip,
    save_sound_clip,
    sound_clip_loss,
)

MEL = (1, 32, 64)  # [1, n_mels, frames] of the test inputs


def test_shapes_and_unit_outputs() -> None:
    torch.manual_seed(0)
    model = SoundClip(SoundClipConfig.tiny(embed_dim=24))
    out = model(torch.rand(3, *MEL))
    assert out.shape == (3, 24)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    full = SoundClip(SoundClipConfig())  # the real one: a ResNet-18 body, 512-d output
    blocks = [m for m in full.backbone.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and full.backbone.fc.out_features == 512
    assert full.stem.in_channels == 1 and full.stem.out_channels == 3
    assert full.eval()(torch.rand(2, 1, 128, 64)).shape == (2, 512)


def test_temperature_starts_at_1_over_0_07_and_is_clamped_at_100() -> None:
    model = SoundClip(SoundClipConfig.tiny())
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)


def test_info_nce_on_hand_made_embeddings() -> None:
    eye2, eye3 = torch.eye(2), torch.eye(3)
    one = torch.tensor(1.0)
    # matching pairs, logits [[1, 0], [0, 1]]: -log(e / (e + 1)) both ways
    assert info_nce(eye2, eye2, one).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # scale 2, three orthogonal pairs: log(e^2 + 2) - 2
    assert info_nce(eye3, eye3, torch.tensor(2.0)).item() == pytest.approx(
        math.log(math.exp(2) + 2) - 2, rel=1e-6
    )
    # swapped pairs are worse than matched ones: -log(1 / (e + 1))
    assert info_nce(eye2, eye2.flip(0), one).item() == pytest.approx(math.log(1 + math.e), rel=1e-6)
    # equal labels are both positives: target (1/2, 1/2) -> log(e + 1) - 1/2
    same = torch.tensor([4, 4])
    assert info_nce(eye2, eye2, one, same).item() == pytest.approx(
        math.log(math.e + 1) - 0.5, rel=1e-6
    )
    # distinct labels reduce to the plain loss
    assert info_nce(eye2, eye2, one, torch.tensor([0, 1])).item() == pytest.approx(
        info_nce(eye2, eye2, one).item()
    )


def test_the_loss_weighs_its_terms() -> None:
    torch.manual_seed(0)
    a, t, i, g = (F.normalize(torch.randn(4, 8), dim=-1) for _ in range(4))
    labels = torch.tensor([0, 1, 1, 2])
    model = SoundClip(SoundClipConfig.tiny(embed_dim=8, w_text=2.0, w_image=3.0, w_audio=0.5))
    terms = sound_clip_loss(model, a, t, i, labels, audio_aug=g)
    s = model.scale()
    assert terms["audio_text"].item() == pytest.approx(info_nce(a, t, s, labels).item())
    assert terms["audio_image"].item() == pytest.approx(info_nce(a, i, s).item())
    assert terms["audio_audio"].item() == pytest.approx(info_nce(a, g, s).item())
    want = 2 * terms["audio_text"] + 3 * terms["audio_image"] + 0.5 * terms["audio_audio"]
    assert terms["total"].item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match="audio_aug"):
        sound_clip_loss(model, a, t, i, labels)


def _batch(clip, n: int = 4):
    """Random mels, frames and prompts of n samples of n classes, embedded by the frozen CLIP."""
    g = torch.Generator().manual_seed(1)
    mel = torch.rand(n, *MEL, generator=g)
    frames = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    prompts = [f"a photo of class {k}." for k in range(n)]
    return mel, clip.encode_image(frames), clip.encode_text(prompts), torch.arange(n)


def test_gradients_reach_the_encoder_but_not_clip() -> None:
    clip = load_clip(None, tiny=True)
    model = SoundClip(SoundClipConfig.tiny(embed_dim=clip.embed_dim))
    mel, image, text, labels = _batch(clip)
    sound_clip_loss(model, model(mel), text, image, labels)["total"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["stem.weight"].abs().sum() > 0 and grads["backbone.fc.weight"].abs().sum() > 0
    assert grads["logit_scale"].abs() > 0
    assert all(p.grad is None and not p.requires_grad for p in clip.parameters())


def test_one_batch_is_overfit() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: extra threads only fight over busy cores
    try:
        _overfit_one_batch()
    finally:
        torch.set_num_threads(threads)


def _overfit_one_batch() -> None:
    torch.manual_seed(0)
    clip = load_clip(None, tiny=True)
    model = SoundClip(SoundClipConfig.tiny(embed_dim=clip.embed_dim))
    mel, image, text, labels = _batch(clip)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        loss = sound_clip_loss(model, model(mel), text, image, labels)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # text_k and image_k of the random CLIP disagree, so the floor is well above 0
    assert max(losses[-3:]) < 0.5 * losses[0], losses
    with torch.no_grad():  # each sound now sits closest to its own prompt and frame
        audio = model(mel)  # (batch statistics, as in training)
        assert torch.equal((audio @ text.T).argmax(dim=1), labels)
        assert torch.equal((audio @ image.T).argmax(dim=1), labels)


def test_saved_encoder_loads_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SoundClip(SoundClipConfig.tiny(embed_dim=16, w_audio=0.25)).eval()
    folder = save_sound_clip(model, tmp_path / "f_a")
    for path in (folder, folder / "sound_clip.safetensors"):
        loaded = load_sound_clip(path)
        assert loaded.cfg == model.cfg and not loaded.training
        x = torch.rand(2, *MEL)
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="python -m model.train_audio"):
        load_sound_clip(None)
    with pytest.raises(FileNotFoundError, match="lacks sound_clip.safetensors, sound_clip.json"):
        load_sound_clip(tmp_path)
