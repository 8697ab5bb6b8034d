"""A folder of the awkward file names and links every batch command must survive (issue 11, class 5).

Shared by the ``predict`` tests (tests/test_hostile_outputs.py) and the ``check`` tests
(tests/test_cli_check.py): both walk inputs with ``pneumocxr.inputs.walk_inputs``.
"""

from __future__ import annotations

import os
from pathlib import Path

from dicom_factory import make_dicom


def awkward_tree(root: Path) -> dict[str, str | None]:
    """A folder of awkward names and links: entry name -> expected reason fragment (None: accepted)."""
    root.mkdir()
    make_dicom(root / ("L" * 246 + ".dcm"))  # 250 characters
    make_dicom(Path(os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9-latin1.dcm")))  # not UTF-8
    (root / "dangling.dcm").symlink_to(root / "gone.dcm")
    (root / "loop_a.dcm").symlink_to(root / "loop_b.dcm")
    (root / "loop_b.dcm").symlink_to(root / "loop_a.dcm")
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    make_dicom(elsewhere / "inside.dcm")
    (root / "linked_folder").symlink_to(elsewhere, target_is_directory=True)
    (root / "linked_folder_again").symlink_to(elsewhere, target_is_directory=True)
    (root / "self").symlink_to(root, target_is_directory=True)
    return {
        "L" * 246 + ".dcm": None,
        "caf\\xe9-latin1.dcm": None,
        "dangling.dcm": "dangling symbolic link",
        "loop_a.dcm": "symbolic link loop",
        "loop_b.dcm": "symbolic link loop",
        "inside.dcm": None,
        "linked_folder_again": "already walked",
        "self": "already walked",
    }
