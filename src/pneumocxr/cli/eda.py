"""``pneumocxr eda``: the exploratory data analysis - figures, CSV tables and eda.json in one folder."""

from __future__ import annotations

import argparse

from pneumocxr.config import data_root


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eda`` sub-command."""
    parser = subparsers.add_parser(
        "eda",
        help="write the EDA figures (PNG), tables (CSV) and numbers (eda.json) to a folder",
        description="Reads the NIH ChestX-ray14 metadata (full 112,120 rows and sample_labels.csv), the RSNA "
        "labels and the real NIH PNGs present, and writes every EDA figure, table and eda.json.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if absent)")
    parser.add_argument(
        "--root", default=None, metavar="DIR", help="data root (default: $PNEUMOCXR_DATA, else data/ of the project)"
    )
    parser.set_defaults(func=run)


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
