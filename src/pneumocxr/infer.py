"""Inference step: files and folders in, one prediction row per input out, streamed batch by batch.

For each input: the DICOM gate (``dicom.gate_and_load``), the one preprocessing function
(``preprocess.to_model_input`` with the run's image size and backbone), the run's model and saved
threshold, a label, and - on request - a Grad-CAM overlay PNG and a DICOM Secondary Capture.

Streaming: inputs are walked lazily (``iter_inputs``), decoded in a thread pool one batch ahead of
the model, predicted per batch and yielded row by row, so memory holds about two batches whatever the
number of files. Determinism: every model call sees a batch of the same shape (the last one padded),
so the same inputs give bit-identical float32 probabilities run after run.

Privacy: rows carry the path and ``patient_hash`` (salted SHA-256 of PatientID, salt from
``$PNEUMOCXR_PATIENT_SALT``), never PatientName, PatientID or birth date.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from pneumocxr import explain, runs
from pneumocxr.config import GateConfig
from pneumocxr.dicom import GATE_FIELDS, gate_and_load, iter_inputs
from pneumocxr.preprocess import to_model_input

log = logging.getLogger(__name__)

ROW_FIELDS = (*GATE_FIELDS, "probability", "label", "threshold", "heatmap", "dicom_out", "patient_hash")
POSITIVE, NEGATIVE = "pneumonia", "no_pneumonia"
PRECISIONS = ("float32", "bfloat16")
SALT_ENV = "PNEUMOCXR_PATIENT_SALT"
DEFAULT_SALT = "pneumocxr-default-salt"  # pseudonymises only; set a site secret in $PNEUMOCXR_PATIENT_SALT
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
    _grad_model: Any = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        """The run directory's name (identifies the model in outputs)."""
        return self.run_dir.resolve().name

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
    return Predictor(run_dir, model, threshold, config.data.image_size, config.model.backbone, config.gate, precision)


def patient_hash(patient_id: str | None, salt: str) -> str | None:
    """First 16 hex digits of SHA-256(salt, PatientID): joins results without carrying the id."""
    if not patient_id:
        return None
    return hashlib.sha256(f"{salt}\x00{patient_id}".encode()).hexdigest()[:16]


def resolve_salt(salt: str | None = None) -> str:
    """The patient-hash salt: argument, else ``$PNEUMOCXR_PATIENT_SALT``, else the (weak) default."""
    chosen = salt or os.environ.get(SALT_ENV)
    if not chosen:
        log.warning("patient hashes use the default salt; set %s to a site secret", SALT_ENV)
    return chosen or DEFAULT_SALT


def _read_header(path: Path):
    """The DICOM header without pixels, or None when it cannot be read."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - already judged by the gate; identity is then unknown
        return None


@dataclass
class Case:
    """One input on its way through: its row, model input and what its outputs need."""

    row: dict[str, Any]
    model_input: np.ndarray | None = None
    pixels: np.ndarray | None = None
    header: Any = None


def empty_row(path: str | os.PathLike, threshold: float | None) -> dict[str, Any]:
    """A row with every field of ``ROW_FIELDS``, unjudged."""
    row = dict.fromkeys(ROW_FIELDS)
    row.update(path=str(path), accepted=False, reasons=[], threshold=threshold)
    return row


def display_pixels(pixels: np.ndarray, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """The image shrunk (area, antialiased) so its longer side is at most ``max_side``."""
    import tensorflow as tf

    scale = max_side / max(pixels.shape)
    if scale >= 1.0:
        return pixels
    shape = (max(1, round(pixels.shape[0] * scale)), max(1, round(pixels.shape[1] * scale)))
    return tf.image.resize(pixels[..., None], shape, method="area", antialias=True).numpy()[..., 0]


def load_case(path: Path, predictor: Predictor, salt: str, keep_pixels: bool = False,
              keep_header: bool = False) -> Case:
    """Gate, decode and preprocess one input. Never raises: failures become reasons."""
    case = Case(empty_row(path, predictor.threshold))
    try:
        result, pixels = gate_and_load(path, predictor.gate)
        case.row.update(result.to_dict())
        header = _read_header(path) if result.photometric or result.modality or result.rows else None
        case.row["patient_hash"] = patient_hash(getattr(header, "PatientID", None), salt) if header else None
        if pixels is None:
            return case
        if not np.isfinite(pixels).all():
            raise ValueError("pixel values are not finite")
        case.model_input = np.asarray(to_model_input(pixels, predictor.image_size, predictor.backbone))
        case.pixels = display_pixels(pixels) if keep_pixels else None
        case.header = header if keep_header else None
    except Exception as exc:  # noqa: BLE001 - one bad input must not stop a batch
        case.row.update(accepted=False, reasons=[*case.row["reasons"], f"could not be processed ({exc})"[:200]])
        case.model_input = case.pixels = case.header = None
    return case


def predict_probabilities(predictor: Predictor, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Pneumonia probabilities for model inputs, every model call padded to ``batch_size`` rows."""
    out = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        padded = np.zeros((batch_size, *batch.shape[1:]), np.float32)
        padded[: len(batch)] = batch
        scores = np.asarray(predictor.model(padded, training=False), dtype=np.float32)
        out.append(scores.reshape(batch_size, -1)[: len(batch), -1])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _output_name(path: str) -> str:
    """A file name unique to an input path: its stem plus a short hash of the absolute path."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"{Path(path).stem}-{digest}"


def write_outputs(case: Case, heatmap: np.ndarray, predictor: Predictor, heatmap_dir: Path | None,
                  dicom_out_dir: Path | None, sc_identity: str) -> None:
    """Save the overlay PNG and/or Secondary Capture of an accepted case and record their paths."""
    from pneumocxr import dicom_out

    row = case.row
    title = explain.decision_title(Path(row["path"]).name, row["probability"], row["threshold"], row["label"])
    fig = explain.overlay_figure(case.pixels, heatmap, title)
    name = _output_name(row["path"])
    if heatmap_dir is not None:
        row["heatmap"] = str(explain.save_figure(fig, heatmap_dir / f"{name}.png"))
    if dicom_out_dir is not None:
        try:
            comment = f"{title}; model run {predictor.run_id}"
            row["dicom_out"] = str(dicom_out.write_secondary_capture(
                dicom_out_dir / f"{name}.dcm", case.header, explain.figure_rgb(fig), run_id=predictor.run_id,
                identity=sc_identity, pseudonym=row["patient_hash"], comment=comment))
        except Exception as exc:  # noqa: BLE001 - the prediction stands; only the PACS copy is missing
            log.warning("%s: no Secondary Capture written (%s)", row["path"], exc)


def score_cases(cases: list[Case], predictor: Predictor, batch_size: int, heatmap_dir: Path | None = None,
                dicom_out_dir: Path | None = None, sc_identity: str = "copy") -> list[dict[str, Any]]:
    """Fill probability and label (and outputs) of a batch of cases; return their rows in order."""
    scored = [c for c in cases if c.model_input is not None]
    if scored:
        inputs = np.stack([c.model_input for c in scored])
        probabilities = predict_probabilities(predictor, inputs, batch_size)
        heatmaps = explain.gradcam_heatmaps(predictor.grad_model(), inputs) if (heatmap_dir or dicom_out_dir) else None
        for i, (case, probability) in enumerate(zip(scored, probabilities)):
            case.row.update(probability=float(probability),
                            label=POSITIVE if probability >= predictor.threshold else NEGATIVE)
            if heatmaps is not None:
                write_outputs(case, heatmaps[i], predictor, heatmap_dir, dicom_out_dir, sc_identity)
    return [c.row for c in cases]


def _batches_of_cases(paths: Iterator[Path], loader: Callable[[Path], Case], batch_size: int,
                      workers: int) -> Iterator[list[Case]]:
    """Cases batch by batch, the next batch decoding in the pool while the current one is scored."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pneumocxr-decode") as pool:
        pending = None
        while chunk := list(itertools.islice(paths, batch_size)):
            submitted = [pool.submit(loader, path) for path in chunk]
            if pending is not None:
                yield [future.result() for future in pending]
            pending = submitted
        if pending is not None:
            yield [future.result() for future in pending]


def _progress(paths: Iterator[Path], show: bool | None) -> tuple[Iterator[Path], Any]:
    """The paths (peeked, not consumed) and a tqdm bar on stderr shown for more than ``FEW_FILES`` inputs."""
    from tqdm import tqdm

    head = list(itertools.islice(paths, FEW_FILES + 1))
    enabled = len(head) > FEW_FILES if show is None else show
    bar = tqdm(unit="file", desc="predict", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
    return itertools.chain(head, paths), bar


def predict_paths(run: str | os.PathLike | Predictor, paths: Iterable[str | os.PathLike], *, batch_size: int = 16,
                  heatmap_dir: str | os.PathLike | None = None, dicom_out_dir: str | os.PathLike | None = None,
                  sc_identity: str = "copy", precision: str = "float32", workers: int = 2, salt: str | None = None,
                  progress: bool | None = False) -> Iterator[dict[str, Any]]:
    """Prediction rows (``ROW_FIELDS``), exactly one per input in input order, yielded batch by batch.

    ``run`` is a run directory (loaded with ``precision``) or a loaded ``Predictor``; ``paths`` files
    and/or folders (walked lazily); ``progress`` None shows a bar for more than a few inputs.
    """
    predictor = run if isinstance(run, Predictor) else load_predictor(run, precision)
    heatmap_dir = Path(heatmap_dir) if heatmap_dir else None
    dicom_out_dir = Path(dicom_out_dir) if dicom_out_dir else None
    salt = resolve_salt(salt)
    keep = heatmap_dir is not None or dicom_out_dir is not None

    def loader(path: Path) -> Case:
        return load_case(path, predictor, salt, keep_pixels=keep, keep_header=dicom_out_dir is not None)

    inputs, bar = _progress(iter_inputs(paths), progress)
    with bar:
        for cases in _batches_of_cases(inputs, loader, batch_size, workers):
            rows = score_cases(cases, predictor, batch_size, heatmap_dir, dicom_out_dir, sc_identity)
            bar.update(len(rows))
            yield from rows


def predict_table(run: str | os.PathLike | Predictor, paths: Iterable[str | os.PathLike], **options):
    """All prediction rows as a pandas DataFrame with the ``ROW_FIELDS`` columns (for small batches)."""
    import pandas as pd

    return pd.DataFrame(list(predict_paths(run, paths, **options)), columns=list(ROW_FIELDS))
