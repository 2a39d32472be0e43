import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL

from avaudit.config import load_config
from avaudit.media.decode import decode_clip
from avaudit.model.fusion import (
    FusionNet,
    audio_pool,
    classify,
    continuous_pool,
    fusion_loss,
    instant_pool,
    localization_map,
    onset_pool,
    visual_pool,
)
from avaudit.vocab import LAYERS


def steps(values):
    """(1, T, 2) features whose step t is [values[t], 10 * values[t]]."""
    v = torch.tensor(values, dtype=torch.float32)
    return torch.stack([v, 10 * v], dim=-1)[None]


def test_continuous_pool_is_the_mean_of_the_concatenation():
    z_v, z_a = steps([1.0, 2.0, 3.0]), steps([0.0, 0.0, 6.0])
    torch.testing.assert_close(continuous_pool(z_v, z_a), torch.tensor([[2.0, 20.0, 2.0, 20.0]]))


def test_instant_pool_picks_exactly_the_top_k_dot_product_steps():
    z_v = steps([1.0, 5.0, 2.0, 4.0, 3.0])
    z_a = steps([1.0, 1.0, -1.0, 1.0, 0.5])  # dot products 101, 505, -202, 404, 151.5
    pooled = instant_pool(z_v, z_a, k=2)  # steps 1 and 3
    torch.testing.assert_close(pooled, torch.cat([(z_v[:, 1] + z_v[:, 3]) / 2, (z_a[:, 1] + z_a[:, 3]) / 2], -1))
    pooled3 = instant_pool(z_v, z_a, k=3)  # + step 4
    torch.testing.assert_close(pooled3[0, 0], torch.tensor((5.0 + 4.0 + 3.0) / 3))


def test_onset_pool_uses_exactly_the_onset_steps_and_falls_back_to_all():
    z_v, z_a = steps([1.0, 2.0, 3.0, 7.0]), steps([4.0, 0.0, 2.0, 8.0])
    onsets = torch.tensor([[False, True, False, True], [False, False, False, False]])
    pooled = onset_pool(z_v.repeat(2, 1, 1), z_a.repeat(2, 1, 1), onsets)
    torch.testing.assert_close(pooled[0], torch.tensor([4.5, 45.0, 4.0, 40.0]))
    torch.testing.assert_close(pooled[1], continuous_pool(z_v, z_a)[0])


def test_unimodal_layers_zero_the_other_half():
    z_v, z_a = steps([1.0, 3.0]), steps([5.0, 7.0])
    torch.testing.assert_close(visual_pool(z_v, z_a), torch.tensor([[2.0, 20.0, 0.0, 0.0]]))
    torch.testing.assert_close(audio_pool(z_v, z_a), torch.tensor([[0.0, 0.0, 6.0, 60.0]]))


def test_classify_is_each_layer_s_own_linear_classifier():
    """Eq. 4: O_i = FC_i(z_i) for every layer i, as five separate nn.Linear would give."""
    torch.manual_seed(0)
    heads = [torch.nn.Linear(6, 4) for _ in LAYERS]
    pooled = torch.randn(3, len(LAYERS), 6)
    out = classify(pooled, torch.stack([h.weight for h in heads]), torch.stack([h.bias for h in heads]))
    assert out.shape == (3, len(LAYERS), 4)
    for i, head in enumerate(heads):
        torch.testing.assert_close(out[:, i], head(pooled[:, i]))


def test_loss_is_the_plain_sum_of_five_cross_entropies():
    logits, labels = torch.randn(4, 5, 3), torch.tensor([0, 2, 1, 1])
    expected = sum(F.cross_entropy(logits[:, i], labels) for i in range(5))
    torch.testing.assert_close(fusion_loss(logits, labels), expected)
    torch.testing.assert_close(fusion_loss(logits, labels, layers=("audio",)), F.cross_entropy(logits[:, 4], labels))


def test_localization_is_the_dot_product_of_maps_and_audio_steps():
    v_maps = torch.zeros(1, 2, 2, 2, 3)
    v_maps[0, 1, 0, 1] = torch.tensor([1.0, 2.0, 3.0])
    z_a = torch.ones(1, 2, 3)
    alpha = localization_map(v_maps, z_a)
    assert alpha.shape == (1, 2, 2, 2) and alpha[0, 1, 0, 1] == 6.0 and alpha.sum() == 6.0


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_every_layer_of_every_preset_gives_finite_c_way_outputs(preset):
    config = load_config("small", TINY_MODEL) if preset == "tiny" else load_config(preset)
    model = FusionNet(config.model, n_classes=7).eval()
    frames = torch.zeros(1, 100, config.model.crop, config.model.crop, 3, dtype=torch.uint8) + 100
    with torch.no_grad():
        if preset == "paper":  # the full network once is enough: shapes below come from the features
            z_v, z_a = torch.rand(1, 100, 512), torch.rand(1, 100, 512)
            logits = model.heads_forward(z_v, z_a, torch.zeros(1, 100, dtype=torch.bool))
        else:
            logits = model(frames, torch.randn(1, 160000), torch.zeros(1, 100, dtype=torch.bool))
    assert logits.shape == (1, len(LAYERS), 7) and torch.isfinite(logits).all()


def test_paper_preset_forward_on_a_real_ten_second_clip(clip10):
    config = load_config("paper").model
    clip = decode_clip(clip10, steps=config.steps, seconds=config.seconds, sample_rate=config.sample_rate,
                       resize=config.resize, crop=config.crop)
    model = FusionNet(config, n_classes=5).eval()
    with torch.no_grad():
        z_v, z_a, v_maps = model.features(torch.from_numpy(clip.frames)[None], torch.from_numpy(clip.audio)[None])
        logits = model.heads_forward(z_v, z_a, torch.zeros(1, 100, dtype=torch.bool))
    assert z_v.shape == z_a.shape == (1, 100, 512) and v_maps.shape == (1, 100, 7, 7, 512)
    assert logits.shape == (1, 5, 5) and torch.isfinite(logits).all()
