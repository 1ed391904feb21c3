"""The entropy decomposition on hand-computed cases, and MC-dropout mode handling."""

import math

import pytest
import torch
from torch import nn

from candor.uncertainty import as_two_class, decompose, dropout_modules, entropy, mc_dropout_mode, mc_sample

LN2 = math.log(2)


def _pixel(*samples: tuple[float, ...]) -> torch.Tensor:
    """(T, C, 1, 1) probabilities of one pixel."""
    return torch.tensor(samples, dtype=torch.float64)[:, :, None, None]


def test_disagreeing_confident_samples_are_purely_epistemic():
    maps = decompose(_pixel((1.0, 0.0), (0.0, 1.0)))
    assert maps.total[0, 0] == pytest.approx(LN2)
    assert maps.aleatoric[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert maps.epistemic[0, 0] == pytest.approx(LN2)


def test_agreeing_samples_have_zero_epistemic():
    maps = decompose(_pixel((0.7, 0.3), (0.7, 0.3), (0.7, 0.3)))
    h = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    assert maps.epistemic[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert maps.aleatoric[0, 0] == pytest.approx(h, rel=1e-6)
    assert maps.total[0, 0] == pytest.approx(h, rel=1e-6)


def test_agreeing_coin_flip_is_purely_aleatoric():
    maps = decompose(_pixel((0.5, 0.5), (0.5, 0.5)))
    assert maps.aleatoric[0, 0] == pytest.approx(LN2)
    assert maps.epistemic[0, 0] == pytest.approx(0.0, abs=1e-9)


def test_hand_computed_mixed_case():
    # samples (0.9, 0.1) and (0.5, 0.5): mean (0.7, 0.3)
    maps = decompose(_pixel((0.9, 0.1), (0.5, 0.5)))
    h09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    total = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    aleatoric = (h09 + LN2) / 2
    assert maps.total[0, 0] == pytest.approx(total, rel=1e-6)
    assert maps.aleatoric[0, 0] == pytest.approx(aleatoric, rel=1e-6)
    assert maps.epistemic[0, 0] == pytest.approx(total - aleatoric, rel=1e-5)
    assert maps.mean_probability[:, 0, 0] == pytest.approx([0.7, 0.3])
    assert maps.std_probability[1, 0, 0] == pytest.approx(0.2)


def test_decomposition_sums_and_bounds_on_random_samples():
    generator = torch.Generator().manual_seed(3)
    probabilities = torch.rand(12, 4, 8, 9, generator=generator).softmax(dim=1)
    maps = decompose(probabilities)
    assert maps.total == pytest.approx(maps.aleatoric + maps.epistemic, abs=1e-6)
    for name in ("total", "aleatoric", "epistemic"):
        values = getattr(maps, name)
        assert values.min() >= 0.0
        assert values.max() <= math.log(4) + 1e-6, name
    assert maps.max_entropy == pytest.approx(math.log(4))


def test_entropy_treats_zero_probability_as_zero_contribution():
    assert entropy(torch.tensor([1.0, 0.0]), dim=0).item() == pytest.approx(0.0)


def test_as_two_class_stacks_background_first():
    p = torch.tensor([[[[0.25]]]])
    assert as_two_class(p)[0, :, 0, 0].tolist() == [0.75, 0.25]


class _Net(nn.Module):
    def __init__(self, with_dropout: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout2d(0.5) if with_dropout else nn.Identity()
        self.head = nn.Conv2d(4, 2, 1)
        self.seen_modes: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.seen_modes.append((self.drop.training, self.norm.training))
        return self.head(self.drop(torch.relu(self.norm(self.conv(x)))))


def test_dropout_is_on_and_batchnorm_frozen_only_while_sampling():
    net = _Net()
    net.train()
    with mc_dropout_mode(net):
        assert net.drop.training and not net.norm.training and not net.training
    assert net.drop.training and net.norm.training and net.training  # restored as it was (training)
    net.eval()
    mc_sample(net, torch.rand(1, 1, 8, 8), samples=3, seed=0)
    assert net.seen_modes == [(True, False)] * 3
    assert not net.drop.training and not net.norm.training  # off afterwards


def test_modes_are_restored_after_an_error():
    net = _Net().eval()
    with pytest.raises(RuntimeError):
        with mc_dropout_mode(net):
            raise RuntimeError("boom")
    assert not net.drop.training


def test_a_model_without_dropout_is_refused():
    with pytest.raises(ValueError, match="no"):
        with mc_dropout_mode(_Net(with_dropout=False)):
            pass


def test_sampling_is_deterministic_for_a_seed_and_stochastic_across_passes():
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.rand(1, 1, 16, 16)
    state = torch.random.get_rng_state()
    first = mc_sample(net, x, samples=5, seed=42)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    again = mc_sample(net, x, samples=5, seed=42)
    other = mc_sample(net, x, samples=5, seed=43)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.allclose(first[0], first[1])  # passes really differ: dropout was on
    assert first.shape == (5, 2, 16, 16)
    assert torch.allclose(first.sum(dim=1), torch.ones(5, 16, 16))


def test_sampling_rejects_bad_arguments():
    net = _Net().eval()
    with pytest.raises(ValueError):
        mc_sample(net, torch.rand(1, 1, 4, 4), samples=1, seed=0)
    with pytest.raises(ValueError):
        mc_sample(net, torch.rand(2, 1, 4, 4), samples=3, seed=0)


def test_dropout_modules_finds_monai_dropout():
    from monai.networks.nets import BasicUNet

    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=2, features=(4, 4, 8, 8, 16, 4), dropout=0.1)
    assert len(dropout_modules(net)) > 0
