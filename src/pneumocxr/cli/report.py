"""``pneumocxr report``: the FDA submission markdown (and PDF) from a run directory's artifacts."""

from __future__ import annotations

import argparse

from pneumocxr.cli.options import add_command, add_run_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    parser = add_command(
        subparsers,
        "report",
        run,
        help="write FDA_Submission.md (and .pdf) from a run directory",
        description="Fill every section of the FDA submission template from RUN_DIR (config.toml, threshold.json, "
        "history.csv, metrics.json, eval/*/metrics.json, plots/, manifest.json) and the EDA folder. "
        "Figures go to <OUT stem>_files/ beside the markdown; Appendix A traces every number.",
    )
    add_run_dir(parser, "run directory written by `pneumocxr train`")
    parser.add_argument(
        "--eda",
        metavar="DIR",
        help="folder with eda.json from `pneumocxr eda --out DIR`; "
        "without it the dataset numbers come from the configured data",
    )
    parser.add_argument(
        "--out",
        default="reports/FDA_Submission.md",
        help="markdown to write (default: %(default)s; the committed FDA_Submission.md at the project root is "
        "refreshed only by `pneumocxr deliverables`)",
    )
    parser.add_argument("--pdf", metavar="PDF", help="also render the markdown to this PDF")
    parser.add_argument(
        "--author", default="pneumocxr project", help="the template's 'Your Name' (default: %(default)s)"
    )
    parser.add_argument("--device", default="PneumoCXR", help="the device name (default: %(default)s)")
    parser.add_argument(
        "--serve-config",
        metavar="SERVE_TOML",
        help="the DICOM node's serve.toml: the flowchart and device description then show the node",
    )


def run(args: argparse.Namespace) -> int:
    """Generate the report and print the files written (a run that cannot be read: exit 2 from ``cli.main``)."""
    from pneumocxr.report.render import write_report

    files = write_report(
        args.run_dir,
        args.out,
        eda_dir=args.eda,
        pdf=args.pdf,
        author=args.author,
        device=args.device,
        serve_config=args.serve_config,
    )
    print(f"markdown: {files.markdown}\nfigures:  {files.figures_dir}/")
    if files.pdf:
        print(f"pdf:      {files.pdf}")
    return 0
