"""Configs as data: TOML in, dataclasses, unknown keys rejected, resolved config written back."""

from __future__ import annotations

import pytest

from pneumocxr.config import Config, ConfigError, load_config, save_config


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
    path.write_text('name = "x"\n[model]\nhead_units = [64, 32]\n[threshold]\nrule = "sensitivity_target"\ntarget = 0.9\n')
    config = load_config(path)
    out = save_config(config, tmp_path / "resolved.toml")
    assert load_config(out) == config
