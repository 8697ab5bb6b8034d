"""Dataset step, splits: every split is by patient, stratified by the patient's label."""

from __future__ import annotations

import numpy as np
import pandas as pd


def patient_wise_split(
    df: pd.DataFrame, val_fraction: float, seed: int, names: tuple[str, str] = ("train", "val")
) -> pd.Series:
    """Assign each row to ``names[0]`` or ``names[1]`` so that no patient is in both.

    About ``val_fraction`` of the patients go to the second split, drawn separately from the
    patients with and without any positive image (so both splits keep the prevalence).
    Deterministic for a given ``seed``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    patient_label = df.groupby("patient_id")["label"].max()
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for _, group in patient_label.groupby(patient_label):
        patients = np.array(sorted(group.index.astype(str)))
        rng.shuffle(patients)
        chosen.extend(patients[: int(round(len(patients) * val_fraction))])
    in_val = df["patient_id"].astype(str).isin(set(chosen))
    return pd.Series(np.where(in_val, names[1], names[0]), index=df.index, name="split")


def stratified_limit(df: pd.DataFrame, limit: int | None, seed: int, by: str = "split") -> pd.DataFrame:
    """At most ``limit`` rows per value of ``by``, keeping the label mix (for tiny/demo configs).

    Rows are drawn whole-patient-free (row sampling inside a split cannot create leakage,
    since splits are already patient-disjoint).
    """
    if limit is None:
        return df
    parts = []
    for _, part in df.groupby(by, sort=False):
        if len(part) <= limit:
            parts.append(part)
            continue
        share = part["label"].mean()
        n_pos = int(round(limit * share))
        n_pos = min(max(n_pos, 1 if share > 0 else 0), limit)
        pos = part[part["label"] == 1].sample(n=min(n_pos, (part["label"] == 1).sum()), random_state=seed)
        neg = part[part["label"] == 0].sample(n=min(limit - len(pos), (part["label"] == 0).sum()), random_state=seed)
        parts.append(pd.concat([pos, neg]).sort_index())
    return pd.concat(parts)


def assert_patient_disjoint(df: pd.DataFrame, by: str = "split") -> None:
    """Raise ``AssertionError`` naming a patient found in two splits."""
    counts = df.groupby("patient_id")[by].nunique()
    leaked = counts[counts > 1]
    if len(leaked):
        raise AssertionError(f"{len(leaked)} patient(s) in more than one split, e.g. {leaked.index[0]!r}")
