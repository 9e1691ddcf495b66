"""The completion browser (notebooks/07_browse_completions): what each policy of a finished run says to one
held-out prompt, side by side, with its per-group gold scores, the min over groups and its training reward,
the SFT policy's as the reference.

It reads only what the run wrote: the finished evaluation files (`eval/<policy-id>.parquet` with their
manifests); nothing is loaded or scored, and nothing of the training stack is imported. The same view is
an ipywidgets UI (`browser_widget`) and a static table (`static_view`, for papermill or a frontend without
widgets). A run that is missing, unfinished or from another profile is said in one line (`RunNotReady`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .methods import NAMES, split_method
from .runs import read_manifest

DISAGREEMENT = "largest disagreement between methods"
MINORITY = "worst for the minority"
RANDOM = "random"
PICKS = (DISAGREEMENT, MINORITY, RANDOM)
EMPTY = "(empty completion)"  # a policy that stops at once: said, not a blank cell
CHOOSE = "a prompt id"  # the widget's fourth way: the prompt id dropdown decides
REFERENCES = ("sft", "gold")
TRAINED_ORDER = ("maxmin", "sharedrep", "uniform")
_COLUMNS = (
    "prompt_id", "prompt", "completion", "training_reward", "sft_training_reward", "method", "seed", "proportion"
)


class RunNotReady(RuntimeError):
    """The run directory cannot be browsed; the message says what is missing and which stage makes it."""


class BrowseError(ValueError):
    """A choice in the browser that the run cannot show (an unknown prompt id, too few methods shown)."""


@dataclass
class Run:
    path: Path
    table: pd.DataFrame  # one row per (policy, prompt): what the evaluation files hold, plus gold_min, family, k
    groups: list[str]
    minority: str | None


def _sweep_hint(profile: str | None, run_dir: Path) -> str:
    return f"`sharedrep run --profile {profile or '<profile>'} --run-dir {run_dir}` (finished stages are skipped)"


def finished_eval_files(run_dir: Path) -> list[Path]:
    """Evaluation files whose manifest was written (a stage's last act): half-written ones are not read."""
    return [p for p in sorted((run_dir / "eval").glob("*.parquet")) if read_manifest(p) is not None]


def load_run(
    run_dir: Path, groups: list[str], minority: str | None = None, profile: str | None = None,
    group_weights: dict[str, dict[str, float]] | None = None,
) -> Run:
    """Every finished evaluation of `run_dir` as one long table, after checking it is a finished run of
    this profile (`groups`, with `group_weights` when the manifests record them); else RunNotReady."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunNotReady(
            f"Run directory {run_dir} does not exist: make it with {_sweep_hint(profile, run_dir)}, "
            "or set overrides['run_dir'] to a finished run."
        )
    files = finished_eval_files(run_dir)
    if not files:
        first = "01_sft" if read_manifest(run_dir / "sft") is None else "04_grpo and 05_evaluate"
        raise RunNotReady(
            f"Run directory {run_dir} has no finished evaluation (eval/<policy>.parquet with its manifest): "
            f"run {first} first, e.g. {_sweep_hint(profile, run_dir)}."
        )
    parts = []
    for path in files:
        names = set(_parquet_columns(path))
        found = sorted(c.removeprefix("group_") for c in names if c.startswith("group_"))
        if sorted(groups) != found:
            raise RunNotReady(
                f"{path} was scored for groups {', '.join(found) or 'none'}, but profile {profile!r} has groups "
                f"{', '.join(sorted(groups))}: set `profile` to the profile the run was made with."
            )
        recorded = (read_manifest(path) or {}).get("params", {}).get("groups")
        if group_weights is not None and recorded is not None and recorded != group_weights:
            raise RunNotReady(
                f"{path} was scored with group weights {recorded}, but profile {profile!r} has {group_weights}: "
                "set `profile` to the profile the run was made with."
            )
        wanted = [c for c in (*_COLUMNS, *(f"group_{g}" for g in groups)) if c in names]
        parts.append(pd.read_parquet(path, columns=wanted))
    table = pd.concat(parts, ignore_index=True)
    for column in ("training_reward", "sft_training_reward"):
        if column not in table:
            table[column] = np.nan
    table["gold_min"] = table[[f"group_{g}" for g in groups]].min(axis=1)
    family_k = [split_method(m) for m in table["method"]]
    table["family"] = [f for f, _ in family_k]
    table["k"] = pd.array([k for _, k in family_k], dtype="Int64")
    if not (~table["family"].isin(REFERENCES)).any():
        raise RunNotReady(
            f"Run directory {run_dir} has evaluations of {', '.join(sorted(set(table['method'])))} only: run 04_grpo "
            f"and 05_evaluate for the reward-model policies first, e.g. {_sweep_hint(profile, run_dir)}."
        )
    return Run(run_dir, table, list(groups), minority if minority in groups else None)


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def open_run(cfg: Any) -> Run:
    """The run of a notebook's Config (its run directory, groups and minority group)."""
    gold = cfg.gold
    return load_run(cfg.run_path, list(gold.groups), gold.minority_group, cfg.profile, dict(gold.groups))


def one_line_errors() -> None:
    """In an IPython kernel: a run that is not ready (or a bad parameter) is shown as its one-line message,
    not a traceback; the cell still fails, so "run all" and papermill stop there."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from .errors import ConfigError

    def one_line(shell, etype, value, tb, tb_offset=None) -> None:
        # IPython ignores a custom handler's return value; _showtraceback is what showtraceback ends in: the
        # kernel sends an error (name, message) whose "traceback" is the one line
        shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])

    shell.set_custom_exc((RunNotReady, BrowseError, ConfigError), one_line)


def _trained(run: Run) -> pd.DataFrame:
    return run.table[~run.table["family"].isin(REFERENCES)]


def seeds(run: Run) -> list[int]:
    return sorted(int(s) for s in _trained(run)["seed"].dropna().unique())


def proportions(run: Run, seed: int | None = None) -> list[float]:
    trained = _trained(run)
    if seed is not None:
        trained = trained[trained["seed"] == seed]
    return sorted(float(p) for p in trained["proportion"].dropna().unique())


def method_choices(run: Run) -> list[str]:
    """The policy families a view can filter on: gold and the reward-model methods the run evaluated."""
    present = set(run.table["family"])
    return [m for m in ("gold", *TRAINED_ORDER) if m in present]


def k_choices(run: Run) -> list[int]:
    return sorted(int(k) for k in run.table["k"].dropna().unique())


def check_choice(run: Run, seed: int | None, proportion: float | None) -> tuple[int, float]:
    """(seed, proportion) of a view: None takes the run's first; a value the run lacks is refused in one line."""
    known = seeds(run)
    seed = known[0] if seed is None else seed
    if seed not in known:
        raise BrowseError(f"Seed {seed} is not in run {run.path}; its seeds: {', '.join(map(str, known))}.")
    props = proportions(run, seed)
    proportion = props[0] if proportion is None else proportion
    if not any(np.isclose(proportion, p) for p in props):
        raise BrowseError(
            f"Proportion {proportion:g} is not in run {run.path} for seed {seed}; its proportions: "
            f"{', '.join(f'{p:g}' for p in props)}."
        )
    return seed, next(p for p in props if np.isclose(proportion, p))


def view_policies(
    run: Run, seed: int, proportion: float, methods: list[str] | None = None, ks: list[int] | None = None
) -> pd.DataFrame:
    """Rows of the policies a view shows: SFT (always, the reference), the seed's gold policy and the reward-model
    policies at (seed, proportion), filtered to `methods` (families, gold included) and `ks` (SharedRep's K)."""
    t = run.table
    trained = (t["seed"] == seed) & np.isclose(t["proportion"].astype(float), proportion)
    rows = t[(t["family"] == "sft") | ((t["family"] == "gold") & (t["seed"] == seed)) | trained]
    if methods is not None:
        rows = rows[(rows["family"] == "sft") | rows["family"].isin(methods)]
    if ks is not None:
        rows = rows[(rows["family"] != "sharedrep") | rows["k"].isin(ks)]
    return rows


def prompt_ids(run: Run, seed: int, proportion: float) -> list[str]:
    """Prompt ids every reward-model policy at (seed, proportion) was evaluated on, sorted."""
    rows = view_policies(run, seed, proportion)
    trained = rows[~rows["family"].isin(REFERENCES)]
    counts = trained.groupby("prompt_id")["method"].nunique()
    return sorted(counts.index[counts == trained["method"].nunique()])


def pick_prompt(
    run: Run,
    seed: int,
    proportion: float,
    pick: str,
    methods: list[str] | None = None,
    ks: list[int] | None = None,
    draw: int = 0,
) -> str:
    """The prompt id a view shows. `pick`: a prompt id, or
    - "random": drawn from the seed and `draw` (the widget's "another" button counts draws), so reproducible;
    - "largest disagreement between methods": the prompt whose gold min over groups differs most (max - min)
      across the reward-model policies shown;
    - "worst for the minority": the prompt with the lowest minority-group gold score, averaged over the
      reward-model policies shown.
    Ties go to the smallest prompt id."""
    ids = prompt_ids(run, seed, proportion)
    if not ids:
        raise BrowseError(f"No prompt was evaluated for every policy of seed {seed}, proportion {proportion:g}.")
    if pick == RANDOM:
        rng = np.random.default_rng([seed, draw])
        return ids[int(rng.integers(len(ids)))]
    if pick not in (DISAGREEMENT, MINORITY):
        if pick not in ids:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise BrowseError(
                f"Prompt {pick!r} is neither a prompt id of seed {seed}, proportion {proportion:g} ({shown}) nor one "
                f"of: {', '.join(PICKS)}."
            )
        return pick
    rows = view_policies(run, seed, proportion, methods, ks)
    rows = rows[~rows["family"].isin(REFERENCES) & rows["prompt_id"].isin(ids)]
    if pick == DISAGREEMENT:
        if rows["method"].nunique() < 2:
            raise BrowseError(f"{DISAGREEMENT!r} needs two or more reward-model policies shown; choose more methods.")
        per_prompt = rows.groupby("prompt_id")["gold_min"].agg(lambda s: s.max() - s.min())
        best = per_prompt.max()
    else:
        if run.minority is None:
            raise BrowseError(f"{MINORITY!r} needs the profile's minority group; this run has none.")
        if rows.empty:
            raise BrowseError(f"{MINORITY!r} needs one or more reward-model policies shown; choose a method.")
        per_prompt = rows.groupby("prompt_id")[f"group_{run.minority}"].mean()
        best = per_prompt.min()
    return sorted(per_prompt.index[per_prompt == best])[0]


def policy_label(method: str) -> str:
    family, k = split_method(method)
    return f"{NAMES[family]} K={k}" if k is not None else NAMES.get(family, method)


def _order(method: str) -> tuple[int, int]:
    family, k = split_method(method)
    return (("sft", "gold", *TRAINED_ORDER).index(family) if family in NAMES else 9, k or 0)


def side_by_side(
    run: Run,
    seed: int,
    proportion: float,
    prompt_id: str,
    methods: list[str] | None = None,
    ks: list[int] | None = None,
) -> pd.DataFrame:
    """One row per policy shown, SFT first (the reference): its completion, per-group gold scores, the min over
    groups and its difference from SFT's, its training reward and SFT's completion under that same reward."""
    rows = view_policies(run, seed, proportion, methods, ks)
    rows = rows[rows["prompt_id"] == prompt_id]
    rows = rows.iloc[sorted(range(len(rows)), key=lambda i: _order(rows["method"].iloc[i]))]
    sft = rows.loc[rows["family"] == "sft", "gold_min"]
    reference = float(sft.iloc[0]) if len(sft) else np.nan
    view = pd.DataFrame(
        {
            "policy": [policy_label(m) + (" (reference)" if m == "sft" else "") for m in rows["method"]],
            "completion": rows["completion"].to_numpy(),
            **{f"gold {g}": rows[f"group_{g}"].to_numpy(dtype=float) for g in run.groups},
            "min over groups": rows["gold_min"].to_numpy(dtype=float),
            "min vs SFT": rows["gold_min"].to_numpy(dtype=float) - reference,
            "training reward": rows["training_reward"].to_numpy(dtype=float),
            "SFT's training reward": rows["sft_training_reward"].to_numpy(dtype=float),
        }
    )
    return view.reset_index(drop=True)


def prompt_text(run: Run, prompt_id: str) -> str:
    return str(run.table.loc[run.table["prompt_id"] == prompt_id, "prompt"].iloc[0])


def heading(seed: int, proportion: float, prompt_id: str, pick: str) -> str:
    how = "" if pick == prompt_id else f" ({pick})"
    return f"seed {seed}, minority proportion {proportion:g}, prompt {prompt_id}{how}"


def static_view(
    run: Run,
    seed: int | None,
    proportion: float | None,
    pick: str = DISAGREEMENT,
    methods: list[str] | None = None,
    ks: list[int] | None = None,
) -> str:
    """The view as plain text (papermill, or no widget frontend): heading, prompt, one table row per policy."""
    seed, proportion = check_choice(run, seed, proportion)
    prompt_id = pick_prompt(run, seed, proportion, pick, methods, ks)
    view = side_by_side(run, seed, proportion, prompt_id, methods, ks)
    view["completion"] = [" ⏎ ".join(str(c).strip().splitlines()) or EMPTY for c in view["completion"]]
    prompt = " ⏎ ".join(prompt_text(run, prompt_id).strip().splitlines())
    table = view.to_markdown(index=False, floatfmt=".3f")
    return f"{heading(seed, proportion, prompt_id, pick)}\nPrompt: {prompt}\n\n{table}"


def _number(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


def view_html(run: Run, view: pd.DataFrame, prompt_id: str, title: str) -> str:
    """The view as HTML: the prompt, then one card per policy side by side (completion above its scores)."""
    scores = [c for c in view.columns if c not in ("policy", "completion")]
    cards = []
    for _, row in view.iterrows():
        lines = "".join(
            f"<tr><td>{html.escape(c)}</td><td style='text-align:right'>{_number(row[c])}</td></tr>" for c in scores
        )
        cards.append(
            "<div class='sharedrep-card' style='border:1px solid #ccc;border-radius:4px;padding:6px'>"
            f"<b class='sharedrep-policy'>{html.escape(row['policy'])}</b>"
            "<pre style='white-space:pre-wrap;font-size:12px;background:#f7f7f7;padding:4px;margin:4px 0'>"
            f"{html.escape(str(row['completion'])) or '<i>' + EMPTY + '</i>'}</pre>"
            f"<table style='font-size:12px;width:100%'>{lines}</table></div>"
        )
    return (
        f"<div class='sharedrep-heading'><b>{html.escape(title)}</b></div>"
        "<pre style='white-space:pre-wrap;font-size:12px;border-left:3px solid #888;padding-left:6px'>"
        f"{html.escape(prompt_text(run, prompt_id).strip())}</pre>"
        "<div style='display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:6px'>"
        f"{''.join(cards)}</div>"
    )


def browser_widget(run: Run, seed: int | None = None, proportion: float | None = None, pick: str = DISAGREEMENT):
    """The ipywidgets browser: seed, proportion, how to pick the prompt (or a prompt id), method and K filters,
    and the side-by-side view. Each control carries a `sharedrep-*` CSS class (tests find them by it)."""
    import ipywidgets as widgets

    seed, proportion = check_choice(run, seed, proportion)
    start_id = pick_prompt(run, seed, proportion, pick) if pick not in PICKS else None  # an unknown id: one line
    seed_box = widgets.Dropdown(options=seeds(run), value=seed, description="seed")
    prop_box = widgets.Dropdown(options=proportions(run, seed), value=proportion, description="proportion")
    pick_box = widgets.Dropdown(options=[*PICKS, CHOOSE], value=CHOOSE if start_id else pick, description="prompt")
    ids = prompt_ids(run, seed, proportion)
    id_box = widgets.Dropdown(options=ids, value=start_id or ids[0], description="prompt id")
    again = widgets.Button(description="another random prompt")
    fit = widgets.Layout(width="auto")  # checkboxes and labels take their text's width, not 300px each
    method_boxes = {
        m: widgets.Checkbox(value=True, description=NAMES[m], indent=False, layout=fit) for m in method_choices(run)
    }
    k_boxes = {k: widgets.Checkbox(value=True, description=f"K={k}", indent=False, layout=fit) for k in k_choices(run)}
    out = widgets.HTML()
    for name, w in [("seed", seed_box), ("proportion", prop_box), ("pick", pick_box), ("prompt-id", id_box),
                    ("again", again), ("view", out)]:
        w.add_class(f"sharedrep-{name}")
    for key, w in [*method_boxes.items(), *k_boxes.items()]:
        w.add_class(f"sharedrep-filter-{key}")
    state = {"draw": 0, "busy": False}

    def refresh(*_) -> None:
        if state["busy"]:
            return
        state["busy"] = True  # setting the dropdowns below would call refresh again
        try:
            s, p = seed_box.value, prop_box.value
            if list(prop_box.options) != proportions(run, s):
                prop_box.options = proportions(run, s)
                p = prop_box.value
            available = prompt_ids(run, s, p)
            if list(id_box.options) != available:
                id_box.options = available
            chosen_methods = [m for m, box in method_boxes.items() if box.value]
            chosen_ks = [k for k, box in k_boxes.items() if box.value]
            how = id_box.value if pick_box.value == CHOOSE else pick_box.value
            prompt_id = pick_prompt(run, s, p, how, chosen_methods, chosen_ks, draw=state["draw"])
            id_box.value = prompt_id
            view = side_by_side(run, s, p, prompt_id, chosen_methods, chosen_ks)
            out.value = view_html(run, view, prompt_id, heading(s, p, prompt_id, how))
        except BrowseError as error:
            out.value = f"<p class='sharedrep-message'><b>{html.escape(str(error))}</b></p>"
        finally:
            state["busy"] = False

    def another(_) -> None:
        state["draw"] += 1
        pick_box.value = RANDOM  # its observer refreshes; already random: refresh here
        refresh()

    def chose_id(_) -> None:
        if state["busy"]:
            return
        if pick_box.value == CHOOSE:
            refresh()
        else:
            pick_box.value = CHOOSE  # a prompt picked by hand: its observer refreshes

    for w in [seed_box, prop_box, pick_box, *method_boxes.values(), *k_boxes.values()]:
        w.observe(refresh, names="value")
    id_box.observe(chose_id, names="value")
    again.on_click(another)
    refresh()
    controls = widgets.VBox(
        [
            widgets.HBox([seed_box, prop_box]),
            widgets.HBox([pick_box, id_box, again]),
            widgets.HBox(
                [widgets.Label("methods:", layout=fit), *method_boxes.values(),
                 widgets.Label("SharedRep K:", layout=fit), *k_boxes.values()],
                layout=widgets.Layout(grid_gap="12px"),
            ),
        ]
    )
    return widgets.VBox([controls, out])
