"""``pneumocxr eda``: the exploratory data analysis - figures, CSV tables and eda.json in one folder."""

from __future__ import annotations

import argparse

from pneumocxr.cli.options import add_command, add_root
from pneumocxr.config import data_root


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eda`` sub-command."""
    parser = add_command(
        subparsers,
        "eda",
        run,
        help="write the EDA figures (PNG), tables (CSV) and numbers (eda.json) to a folder",
        description="Reads the NIH ChestX-ray14 metadata (full 112,120 rows and sample_labels.csv), the RSNA "
        "labels and the real NIH PNGs present, and writes every EDA figure, table and eda.json.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if absent)")
    add_root(parser, "$PNEUMOCXR_DATA, else data/ of the project", metavar="DIR")


def run(args: argparse.Namespace) -> int:
    """Run the EDA and print where the files went and the headline numbers."""
    from pneumocxr.eda import run_eda

    result = run_eda(data_root(args.root), args.out)
    summary = result.summary
    print(
        f"NIH: {summary['n_images']:,} images, {summary['n_patients']:,} patients, "
        f"{summary['n_pneumonia_images']:,} pneumonia images ({summary['n_pneumonia_patients']:,} patients); "
        f"pixel statistics on {summary['pixels']['n_images']} real PNGs"
    )
    print(f"{len(summary['figures'])} figures, {len(summary['tables'])} tables and eda.json written to {args.out}")
    return 0
