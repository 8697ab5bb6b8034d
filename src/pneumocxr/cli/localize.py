"""``pneumocxr localize``: a run's Grad-CAM boxes scored against radiologists' boxes on real films."""

from __future__ import annotations

import argparse
import sys

from pneumocxr.cli.options import add_command, add_run_dir

DESCRIPTION = (
    "Runs the model on the boxed films of DATA/boxes (manifest.csv), turns each Grad-CAM into "
    "boxes, chooses the box threshold on the 'tune' half of the films and reports on the other "
    "half: the RSNA challenge metric (IoU 0.40:0.05:0.75), the IoU of the top box and the "
    "pointing game against the RSNA readers' boxes and each NIH finding's boxes, with 95 % "
    "bootstrap CIs; then Grad-CAM against occlusion sensitivity, the share of attribution in "
    "the image centre and how much the probability moves when the border is masked or "
    "cropped. Writes localisation.json, films.json and localisation.md."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``localize`` sub-command."""
    parser = add_command(
        subparsers,
        "localize",
        run,
        description=DESCRIPTION,
        help="score a run's Grad-CAM boxes against radiologists' boxes on real films",
    )
    add_run_dir(parser)
    parser.add_argument(
        "--root",
        default=None,
        metavar="DATA",
        help="data root with boxes/, nih/BBox_List_2017.csv, rsna/stage_2_train_labels.csv "
        "(default: $PNEUMOCXR_DATA or data/)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default RUN_DIR/localisation, where predict and report read the chosen box threshold)",
    )
    parser.add_argument(
        "--occlusion",
        type=int,
        default=8,
        metavar="N",
        help="report films checked by occlusion sensitivity (grid**2 + 1 forward passes each; "
        "0 skips the attribution checks; default 8)",
    )
    parser.add_argument("--grid", type=int, default=8, metavar="G", help="occlusion patches per side (default 8)")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="films per model call (default 8)")


def run(args: argparse.Namespace) -> int:
    """Score the run and print the tables."""
    from pneumocxr.config import data_root
    from pneumocxr.localize.run import localize_run

    if args.occlusion < 0 or args.grid < 1 or args.n_boot < 1 or args.batch_size < 1:
        print("pneumocxr localize: --occlusion must be >= 0 and --grid, --n-boot, --batch-size >= 1", file=sys.stderr)
        return 2
    try:
        result = localize_run(
            args.run_dir,
            data_root(args.root),
            args.out,
            n_occlusion=args.occlusion,
            grid=args.grid,
            n_boot=args.n_boot,
            batch_size=args.batch_size,
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"pneumocxr localize: error: {exc}", file=sys.stderr)
        return 2
    print(result["tables"])
    return 0
