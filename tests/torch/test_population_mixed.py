"""Members of different architectures in one vmapped population (Linear features, Conv channels
and centred kernel sizes padded), against the oracle: sequential ``fit`` in float64, exact=True."""

import math

import pytest
import torch
from tests.torch import test_population as oracle
from torch import nn

import tuneloop as tl
from tuneloop.torch import CNN, Population, fit
from tuneloop.torch._population._jobs import fit_defaults, prepare
from tuneloop.torch._population._mixed import exact_groups
from tuneloop.torch._stacked import signature

FLOAT64_TOLERANCE, compare, job = oracle.FLOAT64_TOLERANCE, oracle.compare, oracle.job


def members_of(jobs):
    return [prepare(i, {**fit_defaults(), **j, "trial": None}, {}) for i, j in enumerate(jobs)]


class Tiny(nn.Module):
    """Not ours: Conv1d -> GELU -> Dropout -> strided Conv1d -> tanh -> flatten -> Linear."""

    def __init__(self, c1, c2, kernel, norm=False):
        super().__init__()
        self.a = nn.Conv1d(1, c1, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(0.2)
        self.b = nn.Conv1d(c1, c2, 3, stride=2, padding=1)
        self.head = nn.Linear(c2 * 8, 4)
        self.norm = norm

    def forward(self, x):
        h = self.drop(nn.functional.gelu(self.a(x.unsqueeze(1))))
        if self.norm:  # layer norm over channels and length, in forward: padding channels changes it
            h = nn.functional.layer_norm(h, h.shape[1:])
        return self.head(torch.tanh(self.b(h)).flatten(1))


class Shifted(nn.Module):
    """Sums over channels after a learned shift that starts at zero: exact padded at initialization,
    not once the shift has moved (the padded channels would add it too)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv1d(1, c, 3, padding=1)
        self.shift = nn.Parameter(torch.zeros(16))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head((torch.relu(self.conv(x.unsqueeze(1))) + self.shift).sum(1))


def test_cnns_of_different_channels_and_kernels_share_one_padded_population(data, float64):
    """Channels 9/12/16 and kernels 3/5/7: one bucket, blocks of the largest member (kernels centred),
    dropout masks at each member's own shape; each member equals its sequential run."""
    jobs = [job(data, lambda c=c, k=k: CNN(16, 4, channels=c, kernel=k, depth=2, dropout=0.25), epochs=2, seed=i,
                optimizer="adamw", lr=3e-3, weight_decay=1e-2, clip=0.5)
            for i, (c, k) in enumerate([(9, 3), (12, 5), (16, 7)])]
    members = members_of(jobs)
    assert len({m.key for m in members}) == 1 and exact_groups(members) == [members]
    model = Population(members).model
    assert [tuple(b.shape) for b in model.blocks][:3] == [(3, 16, 1, 7), (3, 16), (3, 16, 16, 7)]
    assert model.placement[0][0] == (0, (slice(0, 9), slice(0, 1), slice(2, 5)))  # centred in 7
    assert [tuple(v.shape) for v in model.member(0)][:3] == [(9, 1, 3), (9,), (9, 9, 3)]
    assert model.blocks[-2].shape == (3, 4, 128)  # the head after a flatten of 16 channels x 8 positions
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


def test_a_users_own_conv_model_pads_exactly(data, float64):
    jobs = [job(data, lambda c1=c1, c2=c2, k=k: Tiny(c1, c2, k), epochs=2, optimizer="momentum", lr=0.05, seed=i)
            for i, (c1, c2, k) in enumerate([(5, 6, 3), (8, 5, 5), (6, 7, 7)])]
    members = members_of(jobs)
    assert len({m.key for m in members}) == 1 and exact_groups(members) == [members]
    assert Population(members).model.blocks[-2].shape == (3, 4, 56)  # head: 7 channels x 8 positions
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


def test_members_the_padded_model_does_not_reproduce_train_apart(data, float64):
    """A layer norm over channels in forward: the probe finds the member padded to more channels
    inexact and trains it in its own population; the other two (kernels differ) stay padded."""
    jobs = [job(data, lambda c=c, k=k: Tiny(c, 6, k, norm=True), epochs=2, lr=3e-3, seed=i)
            for i, (c, k) in enumerate([(8, 3), (6, 3), (8, 5)])]
    members = members_of(jobs)
    assert len({m.key for m in members}) == 1
    groups = exact_groups(members)
    assert [[m.job for m in g] for g in groups] == [[0, 2], [1]]
    compare(jobs, tolerance=FLOAT64_TOLERANCE)
    shifted = [job(data, lambda c=c: Shifted(c), epochs=2, lr=1e-2, seed=i) for i, c in enumerate([6, 8])]
    members = members_of(shifted)
    assert len({m.key for m in members}) == 1 and len(exact_groups(members)) == 2  # seen on perturbed parameters
    compare(shifted, tolerance=FLOAT64_TOLERANCE)
    layer_norms = [job(data, lambda c=c: nn.Sequential(nn.Conv1d(1, c, 3, padding=1), nn.GroupNorm(1, c)))
                   for c in (6, 8)]
    assert len({m.key for m in members_of(layer_norms)}) == 2  # a norm module's size is its configuration


def test_a_member_leaves_a_padded_population_by_patience(data, float64):
    jobs = [job(data, lambda c=c, k=k: CNN(16, 4, channels=c, kernel=k, depth=2), lr=lr, seed=i, epochs=4, patience=1)
            for i, (c, k, lr) in enumerate([(12, 5, 0.3), (9, 3, 3e-3), (16, 3, 3e-3)])]
    together, _ = compare(jobs, tolerance=FLOAT64_TOLERANCE)
    assert together[0].stopped_early and len(together[0].history) < 4


def test_padded_cnn_members_checkpoint_at_their_own_shapes(data, float64, tmp_path, monkeypatch):
    """PBT through the driver: checkpoints of padded members load into sequential fit (inline)."""
    from tuneloop.torch._population import _loop

    mixed = []  # how many architectures each population trained

    def recorded(bucket):
        groups = exact_groups(bucket)
        mixed.extend(len({signature(m.net) for m in g}) for g in groups)
        return groups

    monkeypatch.setattr(_loop, "exact_groups", recorded)
    storage = f"sqlite:///{tmp_path / 'mixed.db'}"
    train, val = data
    space = tl.Space(channels=tl.Choice([6, 8]), kernel=tl.Choice([3, 5]), lr=tl.LogFloat(1e-3, 1e-2))

    def trial_fn(trial):
        p = trial.params
        return fit(lambda: CNN(16, 4, channels=p.channels, kernel=p.kernel, depth=2), train, val, trial=trial,
                   lr=p.lr, epochs=trial.budget.epochs, batch_size=32, seed=trial.seed, inspect_every=0).metrics

    values = {}
    for executor in ("inline", "population"):
        study = tl.Study(f"mixed-{executor}", space, trial_fn, metric="val_acc", mode="max", seed=3,
                         budget=tl.Budget(epochs=4), storage=storage)
        study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 2},
                  executor=executor if executor == "inline" else {"name": "population", "exact": True})
        values[executor] = {t.number: (t.params["channels"], t.values.get("val_loss", math.nan))
                            for t in study.trials}
    assert len({c for c, _ in values["inline"].values()}) == 2  # both widths trained
    assert max(mixed) > 1  # members of different shapes trained in one population
    assert values["inline"].keys() == values["population"].keys()
    for number, (channels, loss) in values["inline"].items():
        assert values["population"][number][0] == channels
        assert values["population"][number][1] == pytest.approx(loss, rel=1e-6)


def test_a_conv2d_model_on_images_pads_exactly(float64):
    """Conv2d channels and kernels (3x3, 5x5) on 6x6 images, dropout between the convolutions."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = torch.randn(96, 1, 6, 6, generator=g, dtype=torch.float64) + y.view(-1, 1, 1, 1) * 0.5
    images = ((x[:64], y[:64]), (x[64:], y[64:]))

    def net(c, k):
        return nn.Sequential(nn.Conv2d(1, c, k, padding=k // 2), nn.SiLU(), nn.Dropout(0.3),
                             nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))

    jobs = [job(images, lambda c=c, k=k: net(c, k), lr=3e-3, seed=i, epochs=2)
            for i, (c, k) in enumerate([(5, 3), (6, 5), (8, 3)])]
    members = members_of(jobs)
    assert len({m.key for m in members}) == 1 and exact_groups(members) == [members]
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


def test_an_embedding_model_on_token_ids_pads_its_linear_widths(float64):
    """Integer inputs (dropout masks still float), Linear widths 9/12/16 after an embedding."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (200, 6), generator=g)
    tokens = ((x[:160], x[:160, 0] % 4), (x[160:], x[160:, 0] % 4))

    def net(w):
        return nn.Sequential(nn.Embedding(20, 5), nn.Flatten(), nn.Linear(30, w), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(w, 4))

    jobs = [job(tokens, lambda w=w: net(w), lr=1e-2, seed=i, epochs=2) for i, w in enumerate([9, 12, 16])]
    members = members_of(jobs)
    assert len({m.key for m in members}) == 1 and exact_groups(members) == [members]
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


@pytest.mark.parametrize("model", ["conv", "mlp"])
def test_the_widest_member_leaving_first_keeps_the_others_dropout_at_the_padded_shape(data, float64, model):
    """The blocks keep the widest member's size after it leaves: the others' dropout masks must too
    (both mask modes), and each member still trains as alone."""
    from tuneloop.torch import MLP, fit_population

    def make(width):
        return (lambda: Tiny(width, 8, 3)) if model == "conv" else (lambda: MLP(16, 4, width=width, dropout=0.3))

    jobs = [job(data, make(w), lr=3e-3, seed=i, epochs=e) for i, (w, e) in enumerate([(16, 1), (12, 3), (9, 3)])]
    assert len({m.key for m in members_of(jobs)}) == 1
    compare(jobs, tolerance=FLOAT64_TOLERANCE)  # exact masks
    fast = fit_population(jobs)  # batched masks
    assert [len(r.history) for r in fast] == [1, 3, 3]
