"""A calibrated min over group heads (`calibration.mode`): each head put on a common scale before GRPO's min.

Bradley–Terry heads are identified only up to a shift (and bias-free heads on uncentred features sit at
arbitrary levels), so which group's head binds in the raw min is partly an accident of training. With
`center`, head u's reward becomes r_u − m_u, where m_u is its mean on a shared reference set: the SFT
policy's sampled responses (both responses of every prompt in `responses/`, what the preference pairs were
drawn from); `standardize` also divides by s_u, the head's std there (population std, ddof 0). The offsets
and scales are fitted once, when the GRPO run starts, written with the policy (`calibration.json`, also in
its manifest), and evaluation reads them from there, so a policy is scored with exactly what it climbed.
They are computed from the saved reward model and the responses, never by the reward-model stage, so a
switch that is off changes no reward-model (or any other) parameter hash.

This module is the arithmetic and the file; rewards.py fits it on a run's reference set (`reference_calibration`)
and shows which head binds there (`reference_binding`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError

FILE = "calibration.json"
REFERENCE = "responses/responses.parquet: both sampled SFT responses of every preference prompt"


def fit_offsets(reference: np.ndarray, groups: list[str], mode: str) -> dict:
    """Offsets and scales per group head from its rewards on the reference set ((N, U), columns in `groups`
    order): offset = mean; scale = std (standardize) or 1 (center). The std is reported either way."""
    reference = np.asarray(reference, dtype=np.float64)
    if mode not in ("center", "standardize"):
        raise ValueError(f"Calibration mode {mode!r} fits nothing; fit with center or standardize.")
    if reference.ndim != 2 or reference.shape[1] != len(groups) or len(reference) < 2:
        raise ValueError(f"Reference rewards of shape {reference.shape}; need (N >= 2, {len(groups)}).")
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    if mode == "standardize" and not (std > 0).all():
        flat = groups[int(np.argmin(std))]
        raise ValueError(f"Group {flat!r}'s head is constant on the reference set (std 0); it cannot be standardized.")
    scale = std if mode == "standardize" else np.ones_like(std)
    return {
        "mode": mode,
        "groups": list(groups),
        "offset": dict(zip(groups, mean.tolist())),
        "scale": dict(zip(groups, scale.tolist())),
        "reference_std": dict(zip(groups, std.tolist())),
        "n_reference": len(reference),
    }


def apply(values, calibration: dict | None, groups: list[str]) -> np.ndarray:
    """(N, U) rewards, columns in `groups` order, on the common scale: (r_u − offset_u) / scale_u; raw if None."""
    if calibration is None:
        return np.asarray(values)  # as they are (float32 from a head): today's numbers exactly
    values = np.asarray(values, dtype=np.float64)
    offset = np.array([calibration["offset"][g] for g in groups])
    scale = np.array([calibration["scale"][g] for g in groups])
    return (values - offset) / scale


def binding_shares(values, groups: list[str]) -> dict[str, float]:
    """Which group's head binds (is the argmin) in the min over groups, as a share of rows, per group.
    An exact tie counts for the first group in `groups` order (numpy's argmin)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(groups):
        raise ValueError(f"Rewards of shape {values.shape}; need (N, {len(groups)}) for groups {groups}.")
    counts = np.bincount(values.argmin(axis=1), minlength=len(groups)) if len(values) else np.zeros(len(groups))
    total = max(len(values), 1)
    return {g: float(c) / total for g, c in zip(groups, counts)}


def binding_table(reference: np.ndarray, calibration: dict) -> pd.DataFrame:
    """Per group: offset, scale, reference std, and the share of reference responses on which its head binds,
    raw and calibrated (what notebook 04 shows)."""
    groups = calibration["groups"]
    raw = binding_shares(reference, groups)
    calibrated = binding_shares(apply(reference, calibration, groups), groups)
    return pd.DataFrame(
        {
            "group": groups,
            "offset": [calibration["offset"][g] for g in groups],
            "scale": [calibration["scale"][g] for g in groups],
            "reference_std": [calibration["reference_std"][g] for g in groups],
            "binds_raw": [raw[g] for g in groups],
            "binds_calibrated": [calibrated[g] for g in groups],
        }
    )


def write(calibration: dict, directory: Path) -> None:
    (directory / FILE).write_text(json.dumps(calibration, indent=2))


def read(directory: Path, mode: str) -> dict:
    """The calibration a GRPO policy was trained with (its `calibration.json`); one sentence if there is none
    or it was fitted in another mode."""
    path = directory / FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: this policy was trained without calibration; rerun 04_grpo with calibration.mode "
            f"{mode}, or evaluate with calibration.mode none."
        )
    calibration = json.loads(path.read_text())
    if calibration.get("mode") != mode:
        raise ConfigError(
            f"{path} was fitted with calibration.mode {calibration.get('mode')!r}, not {mode!r}; rerun 04_grpo."
        )
    return calibration
