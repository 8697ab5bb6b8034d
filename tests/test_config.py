"""Configs as data: TOML in, dataclasses, unknown keys rejected, resolved config written back."""

from __future__ import annotations

import pytest

from pneumocxr.config import PROJECT_ROOT, Config, ConfigError, load_config, save_config
from pneumocxr.datasets.acquire.setup import find_shared


def test_load_fills_defaults_and_reads_values(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('[data]\ndataset = "nih"\nimage_size = 128\n[gate]\nage_range = [18, 100]\n')
    config = load_config(path)
    assert config.name == "small"
    assert config.data.dataset == "nih" and config.data.image_size == 128
    assert config.gate.age_range == (18, 100) and config.gate.modalities == ("DX", "CR")
    assert config.model == Config().model


def test_unknown_key_names_file_table_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"typo.toml \[train\]: unknown key\(s\) \['epoch'\]"):
        load_config(path)
    path.write_text("[trian]\n")
    with pytest.raises(ConfigError, match="unknown table"):
        load_config(path)


def test_missing_and_invalid_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: config file not found"):
        load_config(tmp_path / "nothere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_save_then_load_round_trips(tmp_path):
    path = tmp_path / "in.toml"
    path.write_text(
        'name = "x"\n[model]\nhead_units = [64, 32]\n[threshold]\nrule = "sensitivity_target"\ntarget = 0.9\n'
    )
    config = load_config(path)
    out = save_config(config, tmp_path / "resolved.toml")
    assert load_config(out) == config


# ---------------------------------------------------------------- every field validated at load (issue 11.7)
HOSTILE = (find_shared() or PROJECT_ROOT.parent / "shared") / "cases" / "hostile"  # as `data setup` finds it


@pytest.mark.parametrize(
    "name, expected",
    [
        ("gate_all_strings.toml", r"gate_all_strings.toml: \[gate\] modalities = 'DX': input should be a valid array"),
        (
            "epochs_negative.toml",
            r"epochs_negative.toml: \[train\] epochs = -1: input should be greater than or equal to 1",
        ),
        ("lr_negative.toml", r"lr_negative.toml: \[train\] learning_rate = -1.0: input should be greater than 0"),
    ],
)
def test_hostile_configs_are_refused_at_load(name, expected):
    path = HOSTILE / name
    assert path.is_file(), f"{path}: hostile case missing (../shared/cases/hostile)"
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "toml, expected",
    [
        (
            '[threshold]\nrule = "median"\n',
            r"\[threshold\] rule = 'median': input should be 'max_f1', 'sensitivity_target', ",
        ),
        ('[gate]\nage_action = "ignore"\n', r"\[gate\] age_action = 'ignore': input should be 'reject' or 'warn'"),
        ('[train]\nepochs = "3"\n', r"\[train\] epochs = '3': input should be a valid integer"),
        ("[train]\nepochs = 2.5\n", r"\[train\] epochs = 2.5: input should be a valid integer"),
        ('[train]\nfeature_cache = "yes"\n', r"\[train\] feature_cache = 'yes': input should be a valid boolean"),
        ("[train]\nlearning_rate = nan\n", r"\[train\] learning_rate = nan: input should be a finite number"),
        (
            '[data]\ndataset = "mnist"\n',
            r"\[data\] dataset = 'mnist': expected one of kermany, nih, pneumoniamnist, rsna",
        ),
        (
            '[model]\nbackbone = "resnet"\n',
            r"\[model\] backbone = 'resnet': expected one of baseline_cnn, densenet121, vgg16",
        ),
        ("[data]\nval_fraction = 1.0\n", r"\[data\] val_fraction = 1.0: input should be less than 1"),
        ("[model]\nhead_units = [16, 0]\n", r"\[model\] head_units.1 = 0: input should be greater than or equal to 1"),
        (
            "[gate]\nage_range = [18, 2]\n",
            r"\[gate\] age_range = \[18.0, 2.0\]: expected \[low, high\] with low <= high",
        ),
        ("[gate]\nmodalities = []\n", r"\[gate\] modalities = \[\]: tuple should have at least 1 item"),
        (
            '[threshold]\nrule = "sensitivity_target"\n',
            r"\[threshold\] target: rule 'sensitivity_target' needs a target",
        ),
        ("name = 3\n", r"name = 3: input should be a valid string"),
        # the generalisation, DICOM, scale and threshold fields added on main
        ("[data]\nshift_copies = 17\n", r"\[data\] shift_copies = 17: input should be less than or equal to 16"),
        ('[data]\nshift_splits = "official_val"\n', r"\[data\] shift_splits = 'official_val': input should be a valid"),
        ("[train]\naug_border = 0.5\n", r"\[train\] aug_border = 0.5: input should be less than 0.5"),
        (
            "[train]\naug_border_rate = 1.5\n",
            r"\[train\] aug_border_rate = 1.5: input should be less than or equal to 1",
        ),
        ("[train]\naug_blur = -0.1\n", r"\[train\] aug_blur = -0.1: input should be greater than or equal to 0"),
        (
            '[train]\naugment_on = "gpu"\n',
            r"\[train\] augment_on = 'gpu': input should be 'auto', 'model' or 'pipeline'",
        ),
        (
            '[train]\nstrategy = "multi_worker"\n',
            r"\[train\] strategy = 'multi_worker': input should be 'default' or 'mirrored'",
        ),
        (
            '[threshold]\ncalibration = "isotonic"\n',
            r"\[threshold\] calibration = 'isotonic': input should be 'none', 'platt'",
        ),
        (
            '[gate]\nage_missing_action = "skip"\n',
            r"\[gate\] age_missing_action = 'skip': input should be 'reject' or 'warn'",
        ),
        ("[gate]\nmax_pixels = 0\n", r"\[gate\] max_pixels = 0: input should be greater than or equal to 1"),
        (
            "[gate]\nmax_aspect_ratio = 0.5\n",
            r"\[gate\] max_aspect_ratio = 0.5: input should be greater than or equal to 1",
        ),
        (
            "[gate]\nmax_saturated_fraction = 2.0\n",
            r"\[gate\] max_saturated_fraction = 2.0: input should be less than or equal to 1",
        ),
        ("data = 3\n", r"\[data\] must be a table"),
    ],
)
def test_every_field_is_checked_with_one_line_naming_file_and_key(tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=r"bad.toml: " + expected) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_worst_group_midpoint_is_an_allowed_rule(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(
        '[threshold]\nrule = "worst_group_midpoint"\ncalibration = "temperature"\n'
        '[data]\nshift_copies = 16\nshift_splits = ["official_val"]\n'
    )
    config = load_config(path)
    assert config.threshold.rule == "worst_group_midpoint" and config.threshold.calibration == "temperature"
    assert config.data.shift_copies == 16 and config.data.shift_splits == ("official_val",)


def test_shipped_configs_are_valid():
    for path in sorted((PROJECT_ROOT / "configs").glob("*.toml")):
        if "[base]" in path.read_text():  # a sweep file: its [base] is a config
            continue
        assert load_config(path).name == path.stem


def test_cli_refuses_a_bad_config_before_any_work_exit_2(tmp_path, capsys):
    from pneumocxr.cli import main

    status = main(["train", "--config", str(HOSTILE / "epochs_negative.toml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("pneumocxr train: error: ") and "[train] epochs = -1" in err
    assert not (tmp_path / "run").exists()  # nothing was started
