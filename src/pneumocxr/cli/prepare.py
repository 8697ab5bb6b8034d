"""``pneumocxr prepare``: decode a config's images once into uint8 TFRecord shards (resumable)."""

from __future__ import annotations

import argparse
import sys

from pneumocxr.cli.options import add_command, add_root


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` sub-command."""
    prepare = add_command(
        subparsers,
        "prepare",
        run_prepare,
        help="decode a config's images once into uint8 TFRecord shards that training reads",
        description="Decodes every image of the config's dataset and splits once, through the one preprocessing "
        "function, on every core, and writes the uint8 grey view at [data] image_size into sharded "
        "TFRecord files with labels, patient ids and the data list hash. Training, its validation "
        "and the feature cache then read the shards (identical pixels) instead of the image files. "
        "Run it again after an interruption: finished shards are kept.",
    )
    prepare.add_argument("--config", required=True, help="TOML config whose data is prepared")
    prepare.add_argument("--out", help="shard folder (default: the config's [data] shards)")
    add_root(prepare)
    prepare.add_argument("--shard-size", type=int, default=1024, help="images per shard (default: %(default)s)")
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_prepare(args: argparse.Namespace) -> int:
    """Prepare, then print the folder, images and bytes written; a bad config or image exits 2 naming it."""
    from pneumocxr.config import load_config
    from pneumocxr.train.prepare import prepare, shard_bytes
    from pneumocxr.train.shards import read_manifest

    try:
        out = prepare(load_config(args.config), args.out, args.root, args.shard_size, not args.no_progress)
    except (OSError, ValueError, KeyError) as exc:
        print(f"pneumocxr prepare: error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(out)
    splits = ", ".join(f"{name} {part['rows']}" for name, part in manifest["splits"].items())
    print(
        f"{out}: {manifest['rows']} images ({splits}) at {manifest['image_size']} px, "
        f"{shard_bytes(out) / 1e6:.1f} MB of shards"
    )
    return 0
