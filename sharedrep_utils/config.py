"""Profiles and parameters: typed dataclasses filled from a YAML profile plus dotted overrides.

Everything paper-specific (model ids, group weights, proportions, K, hyper-parameters) lives in
`profiles/<name>.yaml`; code reads it only through `Config`. Bad values fail here, before any work,
with one sentence naming the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .methods import METHODS, check_policy, policy_names

PROFILE_DIR = Path(__file__).parent / "profiles"
# gold scorer kinds; gold.SCORERS has one builder for each (a test checks they agree)
TRAIT_KINDS = ("sequence_classifier", "embedding_relevance", "non_offensive", "sentiment", "neutral_tone", "concise")
HH_DIR_ENV = "SHAREDREP_HH_DIR"


@dataclass
class DataConfig:
    hh_dir: str | None = None  # local HH copy; falls back to $SHAREDREP_HH_DIR, then the hub, then the fixture
    hub_dataset: str = "Anthropic/hh-rlhf"
    allow_hub: bool = True
    allow_fixture: bool = True
    single_turn_only: bool = True
    eval_fraction: float = 0.2  # hash split share of held-out prompts when there is no separate train file
    max_prompt_chars: int = 2000
    max_response_chars: int = 2000
    n_sft: int = 0  # 0 = all train dialogues
    n_preference_prompts: int = 10_000
    n_grpo_prompts: int = 0  # 0 = the preference prompts
    n_eval_prompts: int = 2_000


@dataclass
class TinyPolicyConfig:
    """A randomly initialised Llama with a BPE tokenizer trained on HH text (smoke profile only)."""

    vocab_size: int = 4096
    hidden_size: int = 64
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 512


@dataclass
class PolicyConfig:
    model: str = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"  # hub id, local path, or "build:tiny-llama"
    tiny: TinyPolicyConfig = field(default_factory=TinyPolicyConfig)
    chat_template: str | None = None  # used only when the tokenizer has none
    trust_remote_code: bool = False


@dataclass
class SFTStageConfig:
    learning_rate: float = 2e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    # dtype the policy's weights (and so AdamW's state) are loaded and trained in; bf16 precision for the
    # arithmetic is trainer_kwargs' bf16 (autocast). Upstream loaded TinyLlama in bfloat16 (docs/deviations.md)
    model_dtype: str = "float32"
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to TRL's SFTConfig as is


@dataclass
class GenerationConfig:
    """Sampling the two responses per prompt that the gold scorers rank."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = 50  # transformers' default, which upstream sampled with; 0 or null = no top-k
    batch_size: int = 16
    # true: the policy's chat template with the assistant cue; false: upstream's --disable_chat_template
    # prompt, "Human: ...\nAssistant: ..." lines with no trailing cue, here and in evaluation (docs/deviations.md)
    chat_template: bool = True


@dataclass
class TraitConfig:
    kind: str = "sequence_classifier"  # one of TRAIT_KINDS (gold.SCORERS builds each)
    model: str = ""  # hub id, local path or "pkg:<module>" for a model shipped by a Python package
    text_format: str = "{dialogue}\n\nAssistant: {response}"
    max_length: int = 1024
    batch_size: int = 16


@dataclass
class GoldConfig:
    traits: dict[str, TraitConfig] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> trait weights
    minority_group: str = "minority"
    # the text a sequence-classifier scorer reads: hh = its traits' text_format (the RMs' model-card
    # format, run-on turns cut); chat = upstream's decoded chat-template text, run-on turns kept (hh_data.scored_text)
    text: str = "hh"
    # a pair whose two responses score the same for its group: drop it, or keep it with response 0 chosen (upstream)
    preference_ties: str = "drop"
    # dtype the sequence-classifier scorers are loaded in; auto = the checkpoint config's (transformers 5's default,
    # bf16 for Ray2333's helpful RM); upstream scored in float32, transformers 4.55's default
    dtype: str = "float32"


@dataclass
class HeadConfig:
    learning_rate: float = 5e-4
    num_epochs: int = 3
    batch_size: int = 16
    tanh: bool = True  # squash rewards with tanh inside the loss (upstream: SharedRep only)
    center_rewards_coefficient: float = 0.0  # TRL's term coefficient · mean((r_c + r_r)²); 0 = off
    simplex_mixing: bool = False  # SharedRep only: mixing weights on the simplex (paper's theory)
    # plain Adam at a constant rate by default; the upstream trained through transformers' Trainer,
    # whose defaults are a linear decay to 0 and gradient-norm clipping at 1.0 (the paper profile's)
    lr_scheduler: str = "constant"  # constant, linear
    max_grad_norm: float = 0.0  # 0 = no clipping
    # passes over the data, each a fresh schedule with the optimiser's state carried over: upstream's MaxMin
    # script calls trainer.train() twice (2); MaxMin trains one run per group either way
    train_passes: int = 1
    init: str = "normal"  # normal: GPT-2's N(0, 0.02) weights, zero biases (upstream); torch: PyTorch's defaults
    bias: bool = False  # a bias on the reward's last layer (upstream: none; it shifts min-over-groups only)


@dataclass
class BudgetGridConfig:
    """Reward-model budgets beside each method's own settings (budgets.py): a grid of learning rates × epochs at one
    batch size, fixed before the run, on which every method trains alike. Empty: no grid, the methods' own settings."""

    learning_rates: list[float] = field(default_factory=list)
    num_epochs: list[int] = field(default_factory=list)
    batch_size: int = 16
    matched: list[float] = field(default_factory=list)  # [learning rate, epochs]: the grid cell of budget `matched`
    # share of each group's training pairs held out as the validation split on which `tuned` picks a cell
    # (disjoint from the test pairs; with a grid, every budget trains on the rest)
    validation_fraction: float = 0.2


def cell_name(learning_rate: float, num_epochs: int) -> str:
    """A grid cell's name, as budgets.csv and the synthetic check's tables call the setting."""
    return f"lr{learning_rate:g}-ep{int(num_epochs)}"


def check_grid(grid: BudgetGridConfig, name: str = "reward_model.grid") -> None:
    """A budget grid fixed in advance, for the pipeline and the synthetic check alike: at least two distinct
    learning rates and two epoch counts (one cell can pick the winner), rates > 0, whole epochs >= 1, batch >= 1,
    no cell twice by name, and `matched` one of its cells."""
    lrs, epochs = list(grid.learning_rates), list(grid.num_epochs)
    if len(set(lrs)) < 2 or len(set(epochs)) < 2:
        raise ConfigError(
            f"{name} has learning rates {lrs} and epochs {epochs}: use at least two distinct values of each, so "
            "that one matched cell cannot pick the winner."
        )
    if any(lr <= 0 for lr in lrs) or any(e < 1 or e != int(e) for e in epochs) or grid.batch_size < 1:
        raise ConfigError(
            f"{name}: learning rates {lrs} must be > 0, epochs {epochs} whole numbers >= 1 and batch size "
            f"{grid.batch_size} >= 1."
        )
    cells = [cell_name(lr, e) for lr in lrs for e in epochs]
    if len(set(cells)) != len(cells):  # names, not values: 1e-2 and 0.0100000001 are both "lr0.01"
        raise ConfigError(f"{name} repeats a cell: learning rates {lrs}, epochs {epochs}.")
    if len(grid.matched) != 2 or cell_name(*grid.matched) not in cells:
        raise ConfigError(
            f"{name}.matched {grid.matched} must be one [learning rate, epochs] cell of the grid: {', '.join(cells)}."
        )


@dataclass
class RewardModelConfig:
    backbone: str = "gpt2-large"
    pooling: str = "last"  # last (non-pad token), cls, mean
    max_length: int = 512
    batch_size: int = 32
    text_format: str = "{dialogue}\n\nAssistant: {response}"
    text: str = "hh"  # hh: text_format, run-on turns cut; chat: upstream's decoded chat-template text (as gold.text)
    drop_long_pairs: bool = False  # drop pairs with a text over max_length tokens (upstream's TRL); false: truncate
    test_fraction: float = 0.1
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    ks: list[int] = field(default_factory=lambda: [2, 16])
    maxmin: HeadConfig = field(default_factory=lambda: HeadConfig(learning_rate=5e-5, tanh=False))
    sharedrep: HeadConfig = field(default_factory=HeadConfig)
    uniform: HeadConfig = field(default_factory=lambda: HeadConfig(learning_rate=5e-5, tanh=False))
    # false: backbone and heads train end to end through TRL's RewardTrainer (reward_trainer.py),
    # with each method's HeadConfig as the trainer's rate, epochs, batch size, schedule and loss
    freeze_backbone: bool = True
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # end to end only: passed to TRL's RewardConfig
    # which heads GRPO reads (budgets.py): default = each method's own settings above (the paper's, unmatched);
    # matched = the grid cell `grid.matched` for every method; tuned = each method's grid cell with the best
    # validation accuracy (mean over groups). matched and tuned need a grid.
    budget: str = "default"
    grid: BudgetGridConfig = field(default_factory=BudgetGridConfig)


@dataclass
class GRPOStageConfig:
    learning_rate: float = 1e-5
    num_train_epochs: float = 2.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    num_generations: int = 2
    beta: float = 0.05
    max_completion_length: int = 256
    temperature: float = 1.0
    logging_steps: int = 10
    loss_type: str = "dapo"  # TRL's current default; upstream ran TRL 0.19.1, whose default was "bnpo"
    # TRL 1.16's KL term times the importance ratio (unbiased reverse-KL gradient); false: TRL 0.19.1's plain k3
    use_bias_correction_kl: bool = True
    # the text the gold policy's reward reads: scored = the gold scoring text (gold.text); trl = upstream's,
    # TRL's rendering of prompt + completion with upstream's chat template, as the gold RMs' tokenizer reads it
    gold_reward_text: str = "scored"
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to TRL's GRPOConfig as is


@dataclass
class EvaluationConfig:
    max_new_tokens: int = 256
    batch_size: int = 16
    do_sample: bool = False  # greedy by default; true samples with temperature/top_p and `seed`
    temperature: float = 1.0  # used only when do_sample
    top_p: float = 1.0  # used only when do_sample
    seed: int = 0  # sampling seed (same seed, same completions); ignored when greedy
    # false: every policy is scored on the same held-out prompts (the first n by prompt id), so seeds are
    # compared on the same prompts; true (upstream): each seed's policies on n prompts drawn with that seed
    # (the SFT policy, which has no seed, keeps the fixed prompts; its win rate covers the shared ids)
    prompts_per_seed: bool = False


@dataclass
class CalibrationConfig:
    """GRPO's min over a learned reward model's group heads on a common scale (calibration.py). Bradley–Terry
    heads are identified only up to a shift, so the raw min compares arbitrary levels."""

    # none: the raw heads (upstream, the paper); center: each head minus its mean on the reference set (the SFT
    # policy's sampled responses, responses/); standardize: also divided by its std there. Recorded with each
    # GRPO policy (calibration.json), and evaluation reads it from there.
    mode: str = "none"  # not "off": YAML reads off as false


@dataclass
class PrimaryContrastConfig:
    """The contrast a profile declares before the run (contrasts.py): policy minus baseline, seed as the unit."""

    policy: str = ""  # "" = sharedrep-k<the smallest K in reward_model.ks>
    baseline: str = ""  # "" = maxmin
    proportion: float | None = None  # null = the smallest in sweep.proportions
    groups: list[str] = field(default_factory=list)  # [] = the minority group and "min" (the min over groups)


@dataclass
class ResultsConfig:
    """Statistics of 06_results: win-rate tie rule and bootstrap intervals."""

    # a tie is an identical completion (or exactly equal scores); half: it counts 1/2 a win; lose: a loss
    # (the upstream's strict >); summary.csv carries both rules, this one picks the intervals and bold
    ties: str = "half"
    n_bootstrap: int = 2000
    confidence: float = 0.95
    bootstrap_seed: int = 0
    primary: PrimaryContrastConfig = field(default_factory=PrimaryContrastConfig)  # results/contrasts.csv
    # ± with two or more seeds: seed = the standard error across per-seed values; pooled = upstream's
    # standard error over all prompt × seed rows pooled (evaluation noise only; labelled so in the tables)
    spread: str = "seed"


@dataclass
class SweepConfig:
    seeds: list[int] = field(default_factory=lambda: [42])
    proportions: list[float] = field(default_factory=lambda: [0.1])
    evaluate_sft: bool = True  # also evaluate the SFT policy as a no-RLHF reference
    # how the notebooks run SFT, responses, GRPO and evaluate: "none" in the notebook's own process,
    # "accelerate" through `accelerate launch` (one GPU or many; see configs/accelerate/)
    launcher: str = "none"
    accelerate_config: str = ""  # accelerate config file: a path, or a name in configs/accelerate/ (e.g. ddp)
    accelerate_args: list[str] = field(default_factory=list)  # more `accelerate launch` flags: [--num_processes, "4"]
    # variants (variants.py): the reward-model budgets and calibration modes to also run GRPO with, each a run
    # under <run>/variants/<budget>-<mode>/ sharing this run's SFT, responses, preferences and gold policies.
    # Empty: this run's own (reward_model.budget, calibration.mode) only
    budgets: list[str] = field(default_factory=list)
    calibrations: list[str] = field(default_factory=list)


@dataclass
class SlurmConfig:
    """Resources of each stage run's SLURM job (`sharedrep run --executor slurm`, sharedrep_utils/slurm.py)."""

    partition: str = ""  # empty: the cluster's default partition
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_gb: float = 0  # 0: the partition's default
    time_min: int = 60  # each job's time limit
    account: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. {qos: high, constraint: a100}


@dataclass
class Config:
    profile: str = "smoke"
    run_dir: str = ""  # empty = runs/<profile>
    seed: int = 0  # seed of the once-per-profile stages (SFT, response sampling); sweep seeds drive the rest
    device: str = "auto"  # auto, cpu, cuda
    data: DataConfig = field(default_factory=DataConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    gold: GoldConfig = field(default_factory=GoldConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    @property
    def run_path(self) -> Path:
        """run_dir, or runs/<profile> at the checkout's root (so notebooks/ and the shell agree)."""
        if self.run_dir:
            return Path(self.run_dir)
        return checkout_root() / "runs" / self.profile

    def hh_dir(self) -> str | None:
        return self.data.hh_dir or os.environ.get(HH_DIR_ENV) or None

    def policy_methods(self) -> list[str]:
        """Names of the reward-model-driven policies: maxmin, sharedrep-k<K> per K, uniform."""
        return policy_names(self.reward_model.methods, self.reward_model.ks)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_config(profile: str = "smoke", overrides: dict[str, Any] | None = None) -> Config:
    """The profile's YAML, then `overrides` ({"grpo.beta": 0.1, ...}), validated."""
    path = Path(profile)
    if not path.suffix:
        if profile not in available_profiles():
            hint = nearest(profile, available_profiles())
            raise ConfigError(f"Unknown profile {profile!r}{hint} A profile can also be a path to a YAML file.")
        path = PROFILE_DIR / f"{profile}.yaml"
    elif not path.is_file():
        raise ConfigError(f"Profile file {profile!r} does not exist.")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except ConfigError as error:
        raise ConfigError(f"Profile file {str(path)!r}: {error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"Profile file {str(path)!r} is not valid YAML{line}.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Profile file {str(path)!r} must be a mapping of names to values, got {raw!r}.")
    raw.setdefault("profile", path.stem)
    return _with_overrides(raw, overrides)


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted overrides applied, validated (what a notebook given them would load)."""
    return _with_overrides(to_dict(cfg), overrides)


def _with_overrides(raw: dict, overrides: dict[str, Any] | None) -> Config:
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not "the last one wins"."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"key {key!r} appears twice in one section (line {key_node.start_mark.line + 1}).")
            seen.add(key)
        return super().construct_mapping(node, deep)


def notebook_config(
    profile: str,
    overrides: dict[str, Any] | str | None,
    *,
    seed: int | None = None,
    proportion: float | None = None,
    method: str | None = None,
    methods_allowed: tuple[str, ...] = ("sft", "gold"),
) -> Config:
    """A notebook's parameters as a validated Config, before any work; papermill's and JupyterLab's quirks met.

    `overrides` may be a dict or, as `papermill -p overrides '...'` passes it, a YAML/JSON mapping in a string.
    A relative `run_dir` is taken from the repository root (a notebook's working directory is notebooks/).
    `seed`, `proportion` and `method` get the sweep's checks; `methods_allowed` are the reference policies
    the notebook also accepts besides the run's reward-model policies.
    """
    if isinstance(overrides, str):
        try:
            parsed = yaml.safe_load(overrides) if overrides.strip() else {}
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ConfigError(
                f"overrides {overrides!r} is not a mapping; pass it with papermill's -y, e.g. "
                """-y '{"overrides": {"run_dir": "runs/mine", "grpo.beta": 0.1}}'."""
            )
        overrides = parsed
    overrides = dict(overrides or {})
    if overrides.get("run_dir") and not Path(str(overrides["run_dir"])).is_absolute():
        overrides["run_dir"] = str(checkout_root() / str(overrides["run_dir"]))
    cfg = load_config(profile, overrides)
    if seed is not None:
        check_seed(seed)
    if proportion is not None:
        check_proportion(proportion)
    if method is not None:
        check_policy(method, [*methods_allowed, *cfg.policy_methods()])
    return cfg


def checkout_root() -> Path:
    """The repository root when the package runs from a checkout (it has notebooks/), else the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "notebooks").is_dir() else Path.cwd()


def check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"Seed {seed!r} is not a whole number; seeds must be whole numbers >= 0.")
    if seed < 0:
        raise ConfigError(f"Seed {seed} is negative; seeds must be whole numbers >= 0.")


def check_proportion(proportion: Any) -> None:
    if isinstance(proportion, bool) or not isinstance(proportion, (int, float)) or not 0 < proportion < 1:
        raise ConfigError(f"Minority proportion {proportion!r} is outside (0, 1).")  # also refuses nan


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` with the value read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} is not of the form key.sub=value.")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"Override {text!r}: {value!r} is not valid YAML; quote text, close lists.") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


class _Absent:
    def __repr__(self) -> str:
        return "(not set)"


ABSENT = _Absent()  # config_diff's value for a key that only the other side has (e.g. a trainer_kwargs entry)


def flatten(cfg: Any) -> dict[str, Any]:
    """Dotted key -> value for every setting of a Config, sections and mappings opened (lists are values;
    an empty mapping, e.g. trainer_kwargs: {}, has no keys)."""
    out: dict[str, Any] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else str(name))
        else:
            out[key] = value

    walk(to_dict(cfg), "")
    return out


def config_diff(a: str | Config, b: str | Config) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every setting that differs between two profiles (names, YAML
    paths or Configs), in key order; `ABSENT` where only one side has the key. The profile's name is left out."""
    left, right = (flatten(load_config(c) if isinstance(c, str) else c) for c in (a, b))
    keys = sorted((set(left) | set(right)) - {"profile"})
    rows = [(k, left.get(k, ABSENT), right.get(k, ABSENT)) for k in keys]
    return [(k, x, y) for k, x, y in rows if x is ABSENT or y is ABSENT or x != y]


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"Override {key!r} has an empty name between dots; write it like grpo.beta=0.1.")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Override {key!r}: {part!r} is a value, not a section.")
    node[parts[-1]] = value


def nearest(value: str, allowed: list[str] | tuple[str, ...], prefix: str = "") -> str:
    """' did you mean 'x'?' for the closest allowed name (difflib), else the allowed names."""
    near = difflib.get_close_matches(str(value), list(allowed), n=1)
    if near:
        return f"; did you mean {prefix + near[0]!r}?"
    where = f" in {prefix.rstrip('.')}" if prefix else ""
    return f"; allowed{where}: {', '.join(allowed)}."


# settings that no longer exist, with what replaced them (a clearer sentence than "unknown")
REMOVED = {
    "results.tie_tolerance": "a tie is now an identical completion text (a score difference is never a tie); "
    "delete the key.",
}


def _build(cls: type, raw: Any, where: str) -> Any:
    """`where` is the dotted section with its trailing dot ("grpo."), or "" at the top."""
    if not isinstance(raw, dict):
        section = where.rstrip(".")
        what = f"Section {section!r}" if section else "The profile"
        raise ConfigError(f"{what} must be a mapping of names to values, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if where + str(key) in REMOVED:
            raise ConfigError(f"Parameter {where + str(key)!r} was removed: {REMOVED[where + str(key)]}")
        if key not in names:
            raise ConfigError(f"Unknown parameter {where + str(key)!r}{nearest(str(key), names, where)}")
        kwargs[key] = _coerce(hints[key], value, f"{where}{key}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, name)
    if origin is list:
        items = value if isinstance(value, list) else [value]
        return [_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(items)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}.")
        return {str(k): _coerce(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}.")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{name} must be a number, got {value!r}.")
        try:
            number = tp(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}.") from None
        if tp is int and number != float(value):
            raise ConfigError(f"{name} must be a whole number, got {value!r}.")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{name} must be text, got {value!r}.")
        return str(value)
    return value


TIE_RULES = ("half", "lose")
CALIBRATION_MODES = ("none", "center", "standardize")  # calibration.mode
BUDGETS = ("default", "matched", "tuned")  # reward_model.budget
# what ± shows with two or more seeds: the standard error across the per-seed values (the experiment's
# uncertainty), or upstream's standard error over all prompt × seed rows pooled (evaluation noise only)
SPREADS = ("seed", "pooled")
HEAD_INITS = ("normal", "torch")  # reward heads: GPT-2's N(0, 0.02) with zero biases, or PyTorch's defaults
SCORED_TEXTS = ("hh", "chat")  # gold.text, reward_model.text (hh_data.scored_text)
PREFERENCE_TIES = ("drop", "first")  # groups.build_preferences
SFT_MODEL_DTYPES = ("float32", "bfloat16")  # sft.model_dtype
GOLD_DTYPES = ("float32", "bfloat16", "float16", "auto")  # gold.dtype
GOLD_REWARD_TEXTS = ("scored", "trl")  # grpo.gold_reward_text (gold.GoldMinReward)
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's
TEXT_FIELDS = ("dialogue", "prompt", "response")


def check_text_format(template: str, name: str, prompt_required: bool = True) -> None:
    """A scorer's text template: only {dialogue}, {prompt}, {response}; the response must appear, and a prompt
    too unless `prompt_required` is false (a learned reward model may read the response alone)."""
    import string

    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as error:
        raise ConfigError(f"{name} {template!r} is not a valid template ({error}).") from None
    unknown = sorted(fields - set(TEXT_FIELDS))
    if unknown:
        allowed = ", ".join(f"{{{f}}}" for f in TEXT_FIELDS)
        raise ConfigError(f"{name} uses unknown placeholder {{{unknown[0]}}}; allowed: {allowed}.")
    if "response" not in fields:
        raise ConfigError(f"{name} {template!r} must contain {{response}}.")
    if prompt_required and not fields & {"dialogue", "prompt"}:
        raise ConfigError(f"{name} {template!r} must contain {{response}} and one of {{dialogue}} or {{prompt}}.")
    if sum(1 for _, f, _, _ in string.Formatter().parse(template) if f in ("dialogue", "prompt")) > 1:
        raise ConfigError(f"{name} {template!r} puts the prompt in twice; use {{dialogue}} or {{prompt}} once.")


LAUNCHERS = ("none", "accelerate")
ACCELERATE_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def resolve_accelerate_config(value: str) -> Path | None:
    """sweep.accelerate_config as a file: "" = none (accelerate's own default), a name without a
    suffix = configs/accelerate/<name>.yaml, else a path (absolute, from the working directory or
    from the checkout's root, since papermill runs notebooks inside notebooks/)."""
    if not value:
        return None
    shipped = sorted(p.stem for p in ACCELERATE_CONFIG_DIR.glob("*.yaml"))
    candidates = [ACCELERATE_CONFIG_DIR / f"{value}.yaml"] if not Path(value).suffix else []
    candidates += [Path(value), ACCELERATE_CONFIG_DIR.parents[1] / value]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(
        f"sweep.accelerate_config {value!r} is not a file; give a path or one of {', '.join(shipped) or 'none'}."
    )


def validate(cfg: Config) -> None:
    """Checks that need more than a type: ranges, names, weights."""
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {cfg.device!r} is not one of auto, cpu, cuda.")
    sweep = cfg.sweep
    if not sweep.seeds:
        raise ConfigError("sweep.seeds is empty; give at least one seed, e.g. --seeds 42.")
    if not sweep.proportions:
        raise ConfigError("sweep.proportions is empty; give at least one, e.g. --proportions 0.1.")
    for p in sweep.proportions:
        check_proportion(p)
    for seed in [cfg.seed, *sweep.seeds]:
        check_seed(seed)
    rm = cfg.reward_model
    if not rm.methods:
        raise ConfigError(f"reward_model.methods is empty; give at least one of {', '.join(METHODS)}.")
    for method in rm.methods:
        if method not in METHODS:
            raise ConfigError(f"Unknown reward-model method {method!r}{nearest(method, METHODS)}")
    for name, values in [
        ("sweep.seeds", sweep.seeds),
        ("sweep.proportions", sweep.proportions),
        ("reward_model.ks", rm.ks),
        ("reward_model.methods", rm.methods),
    ]:
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            raise ConfigError(f"{name} lists {repeated[0]!r} more than once; give each value once.")
    _check_stage_numbers(cfg)
    if "sharedrep" in rm.methods and not rm.ks:
        raise ConfigError("reward_model.ks is empty; SharedRep needs at least one K, e.g. --ks 2.")
    for k in rm.ks:
        if k < 1:
            raise ConfigError(f"SharedRep rank K={k} is not allowed; K must be at least 1.")
    if rm.pooling not in ("last", "cls", "mean"):
        raise ConfigError(f"reward_model.pooling {rm.pooling!r} is not one of last, cls, mean.")
    for method in METHODS:
        hp = getattr(rm, method)
        if hp.lr_scheduler not in ("constant", "linear"):
            raise ConfigError(f"reward_model.{method}.lr_scheduler {hp.lr_scheduler!r} is not one of constant, linear.")
        if hp.learning_rate <= 0 or hp.num_epochs < 1 or hp.batch_size < 1:
            raise ConfigError(
                f"reward_model.{method}: learning_rate {hp.learning_rate}, num_epochs {hp.num_epochs} and "
                f"batch_size {hp.batch_size} must all be positive."
            )
        if hp.max_grad_norm < 0:
            raise ConfigError(f"reward_model.{method}.max_grad_norm {hp.max_grad_norm} is negative; 0 = no clipping.")
        if hp.train_passes < 1:
            raise ConfigError(f"reward_model.{method}.train_passes {hp.train_passes} must be at least 1.")
        if hp.init not in HEAD_INITS:
            raise ConfigError(f"reward_model.{method}.init {hp.init!r} is not one of {', '.join(HEAD_INITS)}.")
    for name, value in (("reward_model.text", rm.text), ("gold.text", cfg.gold.text)):
        if value not in SCORED_TEXTS:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(SCORED_TEXTS)}.")
    if cfg.gold.preference_ties not in PREFERENCE_TIES:
        raise ConfigError(
            f"gold.preference_ties {cfg.gold.preference_ties!r} is not one of {', '.join(PREFERENCE_TIES)}."
        )
    if cfg.grpo.loss_type not in GRPO_LOSS_TYPES:
        raise ConfigError(f"grpo.loss_type {cfg.grpo.loss_type!r} is not one of {', '.join(GRPO_LOSS_TYPES)}.")
    for name, value, allowed in (
        ("sft.model_dtype", cfg.sft.model_dtype, SFT_MODEL_DTYPES),
        ("gold.dtype", cfg.gold.dtype, GOLD_DTYPES),
        ("grpo.gold_reward_text", cfg.grpo.gold_reward_text, GOLD_REWARD_TEXTS),
    ):
        if value not in allowed:
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}.")
    if not 0 < cfg.data.eval_fraction < 1:
        raise ConfigError(f"data.eval_fraction {cfg.data.eval_fraction} is outside (0, 1).")
    if not 0 < rm.test_fraction < 1:
        raise ConfigError(f"reward_model.test_fraction {rm.test_fraction} is outside (0, 1).")
    gold = cfg.gold
    if not gold.traits:
        raise ConfigError("gold.traits is empty; the profile must name at least one gold scorer.")
    for name, trait in gold.traits.items():
        if trait.kind not in TRAIT_KINDS:
            raise ConfigError(f"gold.traits.{name}.kind {trait.kind!r} is not one of {', '.join(sorted(TRAIT_KINDS))}.")
    if len(gold.groups) < 2:
        raise ConfigError(f"gold.groups names {len(gold.groups)} group(s); at least 2 are needed.")
    if gold.minority_group not in gold.groups:
        raise ConfigError(
            f"gold.minority_group {gold.minority_group!r} is not one of the groups {', '.join(gold.groups)}."
        )
    for group, weights in gold.groups.items():
        for trait, weight in weights.items():
            if trait not in gold.traits:
                hint = nearest(trait, list(gold.traits))
                raise ConfigError(f"Group {group!r} weights an unknown trait {trait!r}{hint}")
            if not weight >= 0:  # also refuses nan
                raise ConfigError(f"Group {group!r} gives trait {trait!r} a negative weight {weight}; use >= 0.")
        total = sum(weights.values())
        if not abs(total - 1.0) <= 1e-6:
            raise ConfigError(f"Group {group!r} weights sum to {total:g}; they must sum to 1.")
    for name, trait in gold.traits.items():
        check_text_format(trait.text_format, f"gold.traits.{name}.text_format")
    check_text_format(cfg.reward_model.text_format, "reward_model.text_format", prompt_required=False)
    ev = cfg.evaluation
    if ev.temperature <= 0:
        raise ConfigError(f"evaluation.temperature {ev.temperature} must be positive.")
    if not 0 < ev.top_p <= 1:
        raise ConfigError(f"evaluation.top_p {ev.top_p} is outside (0, 1].")
    res = cfg.results
    if res.ties not in TIE_RULES:
        raise ConfigError(f"results.ties {res.ties!r} is not one of {', '.join(TIE_RULES)}.")
    if res.n_bootstrap < 100:
        raise ConfigError(f"results.n_bootstrap {res.n_bootstrap} is too small; use at least 100.")
    if not 0 < res.confidence < 1:
        raise ConfigError(f"results.confidence {res.confidence} is outside (0, 1).")
    if res.spread not in SPREADS:
        raise ConfigError(f"results.spread {res.spread!r} is not one of {', '.join(SPREADS)}.")
    if cfg.calibration.mode not in CALIBRATION_MODES:
        hint = " (YAML reads off and on as booleans)" if cfg.calibration.mode in ("False", "True") else ""
        raise ConfigError(
            f"calibration.mode {cfg.calibration.mode!r} is not one of {', '.join(CALIBRATION_MODES)}{hint}."
        )
    _check_primary_contrast(cfg)
    _check_budgets(cfg)
    if sweep.launcher not in LAUNCHERS:
        raise ConfigError(f"sweep.launcher {sweep.launcher!r} is not one of {', '.join(LAUNCHERS)}.")
    resolve_accelerate_config(sweep.accelerate_config)  # fails here, naming the file, if it is missing
    hh_dir = cfg.hh_dir()
    if hh_dir and not Path(hh_dir).is_dir():
        raise ConfigError(f"HH data directory {hh_dir!r} does not exist (from data.hh_dir or ${HH_DIR_ENV}).")
    if hh_dir and not any(p.name.endswith((".jsonl", ".jsonl.gz")) for p in Path(hh_dir).rglob("*")):
        raise ConfigError(f"HH data directory {hh_dir!r} holds no *.jsonl or *.jsonl.gz files.")


def _check_budgets(cfg: Config) -> None:
    """reward_model.budget, its grid, and the sweep's budget and calibration variants."""
    rm, grid, sweep = cfg.reward_model, cfg.reward_model.grid, cfg.sweep
    for name, values, allowed in (
        ("reward_model.budget", [rm.budget], BUDGETS),
        ("sweep.budgets", sweep.budgets, BUDGETS),
        ("sweep.calibrations", sweep.calibrations, CALIBRATION_MODES),
    ):
        for value in values:
            if value not in allowed:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}.")
    if bool(grid.learning_rates) != bool(grid.num_epochs):
        raise ConfigError(
            f"reward_model.grid has learning_rates {grid.learning_rates} and num_epochs {grid.num_epochs}: "
            "give both, or neither."
        )
    wanted = {rm.budget, *sweep.budgets} - {"default"}
    if wanted and not grid.learning_rates:
        raise ConfigError(f"Budget(s) {', '.join(sorted(wanted))} need a grid: set reward_model.grid.")
    if grid.learning_rates:
        check_grid(grid)
        if not 0 < grid.validation_fraction < 1:
            raise ConfigError(f"reward_model.grid.validation_fraction {grid.validation_fraction} is outside (0, 1).")
        if not rm.freeze_backbone:
            raise ConfigError("reward_model.grid trains heads on cached features: it needs freeze_backbone: true.")
    for name, values, own in (
        ("sweep.budgets", sweep.budgets, rm.budget),
        ("sweep.calibrations", sweep.calibrations, cfg.calibration.mode),
    ):
        if values and values[0] != own:
            raise ConfigError(f"{name} {values} must start with this run's own setting {own!r} (the base run).")
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} {values} names a setting twice.")
    if len(sweep.calibrations) > 1 and "none" not in sweep.calibrations:
        raise ConfigError(
            f"sweep.calibrations {sweep.calibrations} has no none: a calibrated min is compared with the raw one."
        )


def _check_primary_contrast(cfg: Config) -> None:
    """results.primary names policies the run trains, a proportion it sweeps and groups it has (or "min")."""
    primary = cfg.results.primary
    policies = [*cfg.policy_methods(), "gold", "sft"]
    for name, value in (("policy", primary.policy), ("baseline", primary.baseline)):
        if value and value not in policies:
            allowed = ", ".join(policies)
            raise ConfigError(f"results.primary.{name} {value!r} is not a policy of this run; allowed: {allowed}.")
    if primary.proportion is not None and primary.proportion not in cfg.sweep.proportions:
        allowed = ", ".join(f"{p:g}" for p in cfg.sweep.proportions)
        raise ConfigError(f"results.primary.proportion {primary.proportion:g} is not swept; allowed: {allowed}.")
    for group in primary.groups:
        if group not in [*cfg.gold.groups, "min"]:
            allowed = ", ".join([*cfg.gold.groups, "min"])
            raise ConfigError(f"results.primary.groups names {group!r}; allowed: {allowed}.")


def _check_stage_numbers(cfg: Config) -> None:
    """Sizes, rates and lengths that would otherwise fail deep inside a trainer, hours in."""
    positive = {
        "sft.learning_rate": cfg.sft.learning_rate,
        "sft.num_train_epochs": cfg.sft.num_train_epochs,
        "grpo.learning_rate": cfg.grpo.learning_rate,
        "grpo.num_train_epochs": cfg.grpo.num_train_epochs,
        "generation.temperature": cfg.generation.temperature,
        "grpo.temperature": cfg.grpo.temperature,
    }
    at_least_one = {
        "sft.per_device_train_batch_size": cfg.sft.per_device_train_batch_size,
        "sft.gradient_accumulation_steps": cfg.sft.gradient_accumulation_steps,
        "sft.max_length": cfg.sft.max_length,
        "grpo.per_device_train_batch_size": cfg.grpo.per_device_train_batch_size,
        "grpo.gradient_accumulation_steps": cfg.grpo.gradient_accumulation_steps,
        "grpo.max_completion_length": cfg.grpo.max_completion_length,
        "grpo.logging_steps": cfg.grpo.logging_steps,
        "generation.max_new_tokens": cfg.generation.max_new_tokens,
        "generation.batch_size": cfg.generation.batch_size,
        "evaluation.max_new_tokens": cfg.evaluation.max_new_tokens,
        "evaluation.batch_size": cfg.evaluation.batch_size,
        "reward_model.batch_size": cfg.reward_model.batch_size,
        "reward_model.max_length": cfg.reward_model.max_length,
        "data.max_prompt_chars": cfg.data.max_prompt_chars,
        "data.max_response_chars": cfg.data.max_response_chars,
        "data.n_preference_prompts": cfg.data.n_preference_prompts,
        "data.n_eval_prompts": cfg.data.n_eval_prompts,
    }
    for name, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{name} {value} must be positive.")
    for name, value in at_least_one.items():
        if value < 1:
            raise ConfigError(f"{name} {value} must be at least 1.")
    for name, value in {"data.n_sft": cfg.data.n_sft, "data.n_grpo_prompts": cfg.data.n_grpo_prompts}.items():
        if value < 0:
            raise ConfigError(f"{name} {value} is negative; 0 means all available.")
    if cfg.grpo.num_generations < 2:
        raise ConfigError(f"grpo.num_generations {cfg.grpo.num_generations} is below 2; GRPO compares >= 2 per prompt.")
    if not 0 < cfg.generation.top_p <= 1:
        raise ConfigError(f"generation.top_p {cfg.generation.top_p} is outside (0, 1].")
    if cfg.generation.top_k is not None and cfg.generation.top_k < 0:
        raise ConfigError(
            f"generation.top_k {cfg.generation.top_k} is negative; give a whole number >= 1, or 0 for none."
        )
    if cfg.grpo.beta < 0:
        raise ConfigError(f"grpo.beta {cfg.grpo.beta} is negative; the KL coefficient is >= 0.")
