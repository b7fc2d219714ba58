"""optimizers: toy surfaces, momentum by hand against torch.optim.SGD, the range test; the 05 checks (CPU, seconds)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import optimizers
from course_utils.exercises import ch05

CPU = torch.device("cpu")


# --- surfaces --------------------------------------------------------------------------------------

@pytest.mark.parametrize("surface", optimizers.SURFACES, ids=lambda s: s.name)
def test_surface_minimum_is_a_minimum(surface):
    minimum = torch.tensor(surface.minimum, dtype=torch.float64)
    assert optimizers.gradient(surface, minimum).abs().max() < 1e-6
    assert torch.linalg.eigvalsh(optimizers.hessian(surface, surface.minimum)).min() > 0
    assert surface(torch.tensor(surface.start, dtype=torch.float64)) > surface.min_loss + 1
    grid = torch.stack(torch.meshgrid(torch.linspace(*surface.xlim, 50, dtype=torch.float64),
                                      torch.linspace(*surface.ylim, 50, dtype=torch.float64), indexing="xy"), -1)
    assert surface(grid).shape == (50, 50) and surface(grid).min() >= surface.min_loss - 1e-9


def test_valley_curvatures_and_local_minimum():
    assert torch.allclose(optimizers.hessian(optimizers.VALLEY, (3.0, -1.0)), torch.diag(torch.tensor([0.1, 10.0], dtype=torch.float64)))
    dent = torch.tensor([-0.795, 0.0], dtype=torch.float64)   # the shallow local minimum
    assert optimizers.gradient(optimizers.LOCAL_MINIMUM, dent).abs().max() < 1e-2
    assert optimizers.LOCAL_MINIMUM(dent) > optimizers.LOCAL_MINIMUM.min_loss + 0.5


# --- update rules --------------------------------------------------------------------------------

def test_descend_shapes_and_schedules():
    surface = optimizers.VALLEY
    points = optimizers.descend(surface, surface.start, 0.1, 7)
    assert points.shape == (8, 2) and points.dtype == torch.float64
    assert points[0].tolist() == list(surface.start)
    assert torch.equal(optimizers.descend(surface, surface.start, [0.1] * 7), points)
    assert optimizers.descend_torch(surface, surface.start, [0.1, 0.2, 0.05]).shape == (4, 2)


def test_zero_momentum_is_plain_gradient_descent():
    surface = optimizers.ROSENBROCK
    plain = optimizers.descend(surface, surface.start, 1e-3, 50, update=optimizers.sgd_step)
    for update in (optimizers.momentum_step, optimizers.nesterov_step):
        assert torch.allclose(optimizers.descend(surface, surface.start, 1e-3, 50, 0.0, update), plain, atol=1e-14)
    assert torch.allclose(optimizers.descend_torch(surface, surface.start, 1e-3, 50), plain, atol=1e-14)


@pytest.mark.parametrize("surface", optimizers.SURFACES, ids=lambda s: s.name)
def test_both_momentum_forms_match_torch_at_a_constant_rate(surface):
    reference = optimizers.descend_torch(surface, surface.start, surface.lr, 100, beta=0.9)
    for update in (optimizers.momentum_step, optimizers.scaled_momentum_step):
        assert torch.allclose(optimizers.descend(surface, surface.start, surface.lr, 100, 0.9, update), reference,
                              rtol=1e-12, atol=1e-12)


def test_forms_differ_after_a_rate_change_and_rescaling_reconciles_them():
    surface, lrs = optimizers.VALLEY, [0.15] * 20 + [0.015] * 20
    torch_walk = optimizers.descend_torch(surface, surface.start, lrs, beta=0.9)
    a = optimizers.descend(surface, surface.start, lrs, beta=0.9, update=optimizers.momentum_step)
    b = optimizers.descend(surface, surface.start, lrs, beta=0.9, update=optimizers.scaled_momentum_step)
    assert torch.allclose(a, torch_walk, atol=1e-12)
    assert torch.allclose(a[:21], b[:21], atol=1e-12)
    assert (a[21:] - b[21:]).norm(dim=1).max() > 0.1
    step_a, step_b = (a[21] - a[20]).norm(), (b[21] - b[20]).norm()
    assert step_b > 5 * step_a, "form B keeps moving at the old rate's pace for a while"
    rescaled = ch05._scaled_walk_05(surface, surface.start, lrs, 0.9, lambda new, old: new / old)
    assert torch.allclose(rescaled, torch_walk, rtol=1e-9, atol=1e-12)


def test_nesterov_matches_torch():
    surface = optimizers.VALLEY
    by_hand = optimizers.descend(surface, surface.start, 0.1, 60, 0.9, optimizers.nesterov_step)
    assert torch.allclose(by_hand, optimizers.descend_torch(surface, surface.start, 0.1, 60, beta=0.9, nesterov=True),
                          atol=1e-12)


def test_stability_limits_on_the_valley():
    """Plain SGD is stable below 2 / λ_max = 0.2, momentum 0.9 below 2 (1 + β) / λ_max = 0.38."""
    s = optimizers.VALLEY
    final = lambda lr, beta=0.0: s(optimizers.descend(s, s.start, lr, 300, beta)[-1]).item()  # noqa: E731
    assert final(0.19) < 1e-2 and final(0.21) > 1e6
    assert final(0.37, 0.9) < 1e-6 and final(0.39, 0.9) > 1e6


def test_momentum_beats_plain_sgd_on_every_surface():
    for s in optimizers.SURFACES:
        plain = optimizers.descend(s, s.start, s.lr, s.steps)
        heavy = optimizers.descend(s, s.start, s.lr, s.steps, 0.9)
        assert s(heavy[-1]) - s.min_loss < (s(plain[-1]) - s.min_loss) / 100, s.name


def test_plot_runs_survives_a_diverging_walk():
    s = optimizers.VALLEY
    fig = optimizers.plot_runs(s, {"diverges": optimizers.descend(s, s.start, 0.3, 40), "fine": optimizers.descend(s, s.start, 0.1, 40)},
                          title="t")
    assert len(fig.axes) >= 2 and fig.axes[1].get_yscale() == "log"


# --- the learning-rate range test ------------------------------------------------------------------

def separable_loader(seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(64) % 2
    x = torch.randn(64, 8, generator=g) + (y * 2 - 1).float()[:, None]
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=g)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def test_range_test_restores_model_and_optimizer():
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = optimizers.lr_range_test(model, separable_loader(), optimizer, start_lr=1e-4, end_lr=1.0, steps=30,
                                 diverge=float("inf"), device=CPU)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # BatchNorm buffers too
    assert optimizer.param_groups[0]["lr"] == 0.123 and not optimizer.state
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 30   # cycles through 8 batches
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1.0)
    ratios = torch.tensor(result.lrs[1:]) / torch.tensor(result.lrs[:-1])
    assert torch.allclose(ratios, ratios[0].expand_as(ratios)), "exponential growth: a constant factor per batch"
    assert result.suggestion == pytest.approx(result.min_loss_lr / 10)
    assert min(result.smoothed) < result.smoothed[0], "the loss falls somewhere in the range"


def test_range_test_stops_when_the_loss_explodes():
    model = small_model()
    result = optimizers.lr_range_test(model, separable_loader(), torch.optim.SGD(model.parameters(), lr=1e-3),
                                 start_lr=1e-3, end_lr=1e6, steps=100, device=CPU)
    assert len(result.lrs) < 100
    assert result.min_loss_lr < result.lrs[-1]


def test_range_test_smoothing_is_bias_corrected():
    model = small_model()
    for p in model.parameters():
        p.requires_grad_(False)   # nothing moves: every batch loss comes from the same weights
    model[-1].bias.requires_grad_(True)
    result = optimizers.lr_range_test(model, separable_loader(), torch.optim.SGD([model[-1].bias], lr=0.0),
                                 start_lr=1e-12, end_lr=1e-11, steps=5, device=CPU)
    assert result.smoothed[0] == pytest.approx(result.losses[0])   # no pull towards 0 at the start
    average = sum(0.9 ** (4 - i) * 0.1 * loss for i, loss in enumerate(result.losses)) / (1 - 0.9**5)
    assert result.smoothed[-1] == pytest.approx(average)


def test_plot_range_test():
    tests = {"a": optimizers.RangeTest([1e-3, 1e-2, 1e-1, 1.0], [0.7, 0.5, 0.3, 2.0], [0.7, 0.6, 0.45, 0.9])}
    assert tests["a"].min_loss_lr == 1e-1 and tests["a"].suggestion == pytest.approx(1e-2)
    fig = optimizers.plot_range_test(tests)
    assert fig.axes[0].get_xscale() == "log"
