"""Inference step: files and folders in, one prediction row per input out, streamed batch by batch.

For each input: the DICOM gate (``dicom.gate_and_load``), the one preprocessing function
(``preprocess.to_model_input`` with the run's image size and backbone), the run's model and saved
threshold, a label, and - on request - a Grad-CAM overlay PNG (matplotlib, ``explain``) and a DICOM
Secondary Capture (its pixels drawn by ``overlay.overlay_rgb``, numpy and Pillow: about 10x cheaper).

Streaming: inputs are walked lazily (``iter_inputs``), decoded in a thread pool one batch ahead of
the model, predicted per batch and yielded row by row, so memory holds about two batches whatever the
number of files. Determinism: every model call sees a batch of the same shape (the last one padded),
so the same inputs give bit-identical float32 probabilities run after run.

Privacy (``pneumocxr.privacy``): rows, logs and overlay titles name an input by ``input`` - its
position in the batch and a salted hash of its path - and carry ``path`` only with ``show_paths``;
``patient_hash`` is a salted SHA-256 of PatientID (site salt, never a public constant). Rows never
carry PatientName, PatientID or birth date. Output files are named by the path hash, never by the
input's own name, and written atomically (``pneumocxr.atomic``).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pneumocxr import explain, overlay, runs
from pneumocxr.atomic import atomic_write_bytes
from pneumocxr.config import GateConfig
from pneumocxr.dicom import GATE_FIELDS, gate_and_load
from pneumocxr.inputs import Found, walk_inputs
from pneumocxr.localize.boxes import DEFAULT_BOX_THRESHOLD, cam_boxes, load_box_threshold
from pneumocxr.preprocess import to_model_input
from pneumocxr.privacy import (  # noqa: F401 - SALT_ENV and input_hash re-exported
    SALT_ENV,
    display_path,
    input_hash,
    input_label,
    patient_hash,
    resolve_salt,
    scrub,
    scrub_row,
)

log = logging.getLogger(__name__)

ROW_FIELDS = (
    "input",
    *GATE_FIELDS,
    "probability",
    "label",
    "threshold",
    "boxes",
    "heatmap",
    "dicom_out",
    "patient_hash",
)
POSITIVE, NEGATIVE = "pneumonia", "no_pneumonia"
PRECISIONS = ("float32", "bfloat16")
iter_inputs = walk_inputs  # the inputs of a batch (``inputs.walk_inputs``); SALT_ENV is re-exported likewise
FEW_FILES = 5  # more inputs than this get a progress bar
DISPLAY_SIDE = 1024  # overlays are drawn from images shrunk to at most this many pixels a side


@dataclass
class Predictor:
    """A run's model, threshold and preprocessing settings, ready to score batches."""

    run_dir: Path
    model: Any
    threshold: float
    image_size: int
    backbone: str
    gate: GateConfig
    precision: str = "float32"
    box_threshold: float = DEFAULT_BOX_THRESHOLD  # fraction of the Grad-CAM peak (pneumocxr.localize.boxes)
    run_name: str | None = None  # ``runs.load_run_id``: the manifest's run id (set by ``load_predictor``)
    _grad_model: Any = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        """The run's id from its manifest (``runs.load_run_id``; identifies the model in outputs)."""
        return self.run_name or runs.load_run_id(self.run_dir)

    def grad_model(self):
        """The Grad-CAM model (built once, on first use)."""
        if self._grad_model is None:
            self._grad_model = explain.gradcam_model(self.model)
        return self._grad_model


def with_precision(model, precision: str):
    """The model itself for float32; for bfloat16 a clone computing in bf16 with a float32 output layer."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is unknown; expected one of {PRECISIONS}")
    if precision == "float32":
        return model
    import keras

    output_layer = model.layers[-1].name

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name != output_layer:
            config["dtype"] = keras.DTypePolicy("mixed_bfloat16")
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


def load_predictor(run_dir: str | os.PathLike, precision: str = "float32") -> Predictor:
    """Everything inference needs from a run directory: model, threshold, image size, backbone, gate."""
    run_dir = Path(run_dir)
    config = runs.load_run_config(run_dir)
    threshold = runs.load_threshold(run_dir).threshold
    model = with_precision(runs.load_model(run_dir), precision)
    return Predictor(
        run_dir,
        model,
        threshold,
        config.data.image_size,
        config.model.backbone,
        config.gate,
        precision,
        load_box_threshold(run_dir),
        runs.load_run_id(run_dir),
    )


def _read_header(path: Path):
    """The DICOM header without pixels, or None when it cannot be read."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return None


@dataclass(frozen=True)
class Options:
    """How a batch names its inputs and what it writes besides rows."""

    salt: str
    show_paths: bool = False
    heatmap_dir: Path | None = None
    dicom_out_dir: Path | None = None
    sc_identity: str = "copy"
    boxes: bool = True  # Grad-CAM boxes for cases labelled pneumonia
    keep_header: bool = False  # keep every accepted case's DICOM header (the DICOM node's reports need it)
    keep_display: bool = False  # keep display pixels without writing outputs (a figure drawn by the caller)

    @property
    def keep_pixels(self) -> bool:
        """Whether accepted cases keep display pixels (an overlay, a Secondary Capture or a figure is wanted)."""
        return self.heatmap_dir is not None or self.dicom_out_dir is not None or self.keep_display


@dataclass
class Case:
    """One input on its way through: its row, model input and what its outputs need."""

    row: dict[str, Any]
    path: Path
    model_input: np.ndarray | None = None
    pixels: np.ndarray | None = None
    header: Any = None
    shape: tuple[int, int] | None = None  # the original pixel grid (boxes are given in it)


def empty_row(
    path: str | os.PathLike, threshold: float | None, label: str | None = None, show_paths: bool = True
) -> dict[str, Any]:
    """A row with every field of ``ROW_FIELDS``, unjudged: ``input`` is ``label``, ``path`` only with ``show_paths``."""
    row = dict.fromkeys(ROW_FIELDS)
    row.update(
        input=label, path=display_path(path) if show_paths else None, accepted=False, reasons=[], threshold=threshold
    )
    return row


def display_pixels(pixels: np.ndarray, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """The image shrunk (area, antialiased) so its longer side is at most ``max_side``."""
    import tensorflow as tf

    scale = max_side / max(pixels.shape)
    if scale >= 1.0:
        return pixels
    shape = (max(1, round(pixels.shape[0] * scale)), max(1, round(pixels.shape[1] * scale)))
    return tf.image.resize(pixels[..., None], shape, method="area", antialias=True).numpy()[..., 0]


def load_case(found: Found, position: int, predictor: Predictor, options: Options) -> Case:
    """Gate, decode and preprocess one input. Never raises: failures become reasons."""
    path = found.path
    label = input_label(position, path, options.salt)
    case = Case(empty_row(path, predictor.threshold, label, options.show_paths), path)
    if found.problem:
        case.row["reasons"] = [found.problem]
        return case
    try:
        result, pixels = gate_and_load(path, predictor.gate)
        case.row.update({k: v for k, v in result.to_dict().items() if k != "path"})
        header = _read_header(path) if result.photometric or result.modality or result.rows else None
        case.row["patient_hash"] = patient_hash(getattr(header, "PatientID", None), options.salt) if header else None
        if pixels is None:
            return case
        if not np.isfinite(pixels).all():
            raise ValueError("pixel values are not finite")
        case.model_input = np.asarray(to_model_input(pixels, predictor.image_size, predictor.backbone))
        case.shape = pixels.shape
        case.pixels = display_pixels(pixels) if options.keep_pixels else None
        case.header = header if options.dicom_out_dir is not None or options.keep_header else None
    except Exception as exc:
        case.row.update(accepted=False, reasons=[*case.row["reasons"], f"could not be processed ({exc})"[:200]])
        case.model_input = case.pixels = case.header = None
    if not options.show_paths:
        scrub_row(case.row, path, label)
    return case


def predict_probabilities(predictor: Predictor, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Pneumonia probabilities for model inputs, every model call padded to ``batch_size`` rows."""
    out = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        padded = np.zeros((batch_size, *batch.shape[1:]), np.float32)
        padded[: len(batch)] = batch
        scores = np.asarray(predictor.model(padded, training=False), dtype=np.float32)
        out.append(scores.reshape(batch_size, -1)[: len(batch), -1])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def output_name(path: str | os.PathLike, salt: str) -> str:
    """An output file stem for an input: ``pneumocxr-`` and its salted path hash (bounded, never the raw name)."""
    return f"pneumocxr-{input_hash(path, salt)}"


def write_outputs(case: Case, heatmap: np.ndarray, predictor: Predictor, options: Options) -> None:
    """Save the overlay PNG and/or Secondary Capture of an accepted case (atomically) and record their paths.

    A failure costs only that output: it is logged (by the input's label) and the row keeps its prediction.
    """
    from pneumocxr.dicom import secondary_capture as dicom_out

    row = case.row
    name = case.path.name if options.show_paths else row["input"]
    stem = output_name(case.path, options.salt)
    # displayed pixels per original pixel, for the boxes (a case built without its original grid: 1)
    scale = case.pixels.shape[0] / case.shape[0] if case.shape else 1.0
    if options.heatmap_dir is not None:
        title = explain.decision_title(display_path(name), row["probability"], row["threshold"], row["label"])
        try:
            png = explain.figure_png(
                explain.overlay_figure(case.pixels, heatmap, title, boxes=row["boxes"], box_scale=scale)
            )
            row["heatmap"] = str(atomic_write_bytes(options.heatmap_dir / f"{stem}.png", png))
        except Exception as exc:
            log.warning("%s: no overlay written (%s)", row["input"], scrub(str(exc), case.path, row["input"]))
    if options.dicom_out_dir is not None:
        blank = options.sc_identity == "blank"  # a blanked SC burns in no input name, not even the label
        title = explain.decision_title(
            None if blank else row["input"], row["probability"], row["threshold"], row["label"]
        )
        try:
            rgb = overlay.overlay_rgb(case.pixels, heatmap, title, boxes=row["boxes"], box_scale=scale)
            sc = dicom_out.secondary_capture(
                case.header,
                rgb,
                run_id=predictor.run_id,
                identity=options.sc_identity,
                pseudonym=row["patient_hash"],
                salt=options.salt,
                comment=f"{title}; model run {predictor.run_id}; boxes (x, y, width, height, score) {row['boxes']}",
            )
            row["dicom_out"] = str(dicom_out.write_dataset(options.dicom_out_dir / f"{stem}.dcm", sc))
        except Exception as exc:
            log.warning("%s: no Secondary Capture written (%s)", row["input"], scrub(str(exc), case.path, row["input"]))


def score_cases(cases: list[Case], predictor: Predictor, batch_size: int, options: Options) -> list[dict[str, Any]]:
    """Fill probability, label, boxes (and outputs) of a batch of cases; return their rows in order.

    Boxes (``pneumocxr.localize.boxes.cam_boxes`` at the run's box threshold) are given for cases
    labelled pneumonia, ``[]`` for the others; Grad-CAM runs only where a box or an overlay needs it.
    """
    scored = [c for c in cases if c.model_input is not None]
    if not scored:
        return [c.row for c in cases]
    inputs = np.stack([c.model_input for c in scored])
    probabilities = predict_probabilities(predictor, inputs, batch_size)
    drawn = options.heatmap_dir is not None or options.dicom_out_dir is not None
    need = [i for i, p in enumerate(probabilities) if drawn or (options.boxes and p >= predictor.threshold)]
    heatmaps = dict(zip(need, explain.gradcam_heatmaps(predictor.grad_model(), inputs[need]))) if need else {}
    for i, (case, probability) in enumerate(zip(scored, probabilities)):
        positive = bool(probability >= predictor.threshold)
        case.row.update(probability=float(probability), label=POSITIVE if positive else NEGATIVE)
        if options.boxes:
            found = cam_boxes(heatmaps[i], case.shape, predictor.box_threshold, float(probability)) if positive else []
            case.row["boxes"] = [b.to_dict() for b in found]
        if drawn:
            write_outputs(case, heatmaps[i], predictor, options)
    return [c.row for c in cases]


def _batches_of_cases(
    items: Iterator[tuple[int, Found]], loader: Callable[[int, Found], Case], batch_size: int, workers: int
) -> Iterator[list[Case]]:
    """Cases batch by batch, the next batch decoding in the pool while the current one is scored."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pneumocxr-decode") as pool:
        pending = None
        while chunk := list(itertools.islice(items, batch_size)):
            submitted = [pool.submit(loader, position, found) for position, found in chunk]
            if pending is not None:
                yield [future.result() for future in pending]
            pending = submitted
        if pending is not None:
            yield [future.result() for future in pending]


def _progress(items: Iterator, show: bool | None) -> tuple[Iterator, Any]:
    """The items (peeked, not consumed) and a tqdm bar on stderr shown for more than ``FEW_FILES`` inputs."""
    from tqdm import tqdm

    head = list(itertools.islice(items, FEW_FILES + 1))
    enabled = len(head) > FEW_FILES if show is None else show
    bar = tqdm(unit="file", desc="predict", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
    return itertools.chain(head, items), bar


def predict_paths(
    run: str | os.PathLike | Predictor,
    paths: Iterable[str | os.PathLike | Found],
    *,
    batch_size: int = 16,
    heatmap_dir: str | os.PathLike | None = None,
    dicom_out_dir: str | os.PathLike | None = None,
    sc_identity: str = "copy",
    precision: str = "float32",
    workers: int = 2,
    salt: str | None = None,
    progress: bool | None = False,
    show_paths: bool = False,
    boxes: bool = True,
) -> Iterator[dict[str, Any]]:
    """Prediction rows (``ROW_FIELDS``), exactly one per input in input order, yielded batch by batch.

    ``run`` is a run directory (loaded with ``precision``) or a loaded ``Predictor``; ``paths`` files
    and/or folders (walked lazily by ``inputs.walk_inputs``); ``progress`` None shows a bar for more
    than a few inputs. Rows name inputs by ``input`` (position and salted path hash); ``path`` is
    filled only with ``show_paths``. ``salt`` defaults to ``privacy.resolve_salt()``. ``boxes`` False
    leaves the ``boxes`` field None (no Grad-CAM for rows without overlays, e.g. to time the model).
    """
    predictor = run if isinstance(run, Predictor) else load_predictor(run, precision)
    options = Options(
        resolve_salt(salt),
        show_paths,
        Path(heatmap_dir) if heatmap_dir else None,
        Path(dicom_out_dir) if dicom_out_dir else None,
        sc_identity,
        boxes,
    )

    def loader(position: int, found: Found) -> Case:
        return load_case(found, position, predictor, options)

    items, bar = _progress(enumerate(walk_inputs(paths), start=1), progress)
    with bar:
        for cases in _batches_of_cases(items, loader, batch_size, workers):
            rows = score_cases(cases, predictor, batch_size, options)
            bar.update(len(rows))
            yield from rows


def predict_table(run: str | os.PathLike | Predictor, paths: Iterable[str | os.PathLike], **options):
    """All prediction rows as a pandas DataFrame with the ``ROW_FIELDS`` columns (for small batches)."""
    import pandas as pd

    return pd.DataFrame(list(predict_paths(run, paths, **options)), columns=list(ROW_FIELDS))
