"""Benchmark inputs: real images from the data root, NIH PNGs wrapped into DICOM and Kermany JPEGs.

The DICOM folder repeats the 98 real NIH images under different file names until it holds the
number of files asked for; every file is a valid DX CHEST PA image that passes
the gate, so the benchmark times the accepted path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from pneumocxr.datasets import load_kermany, with_images


def nih_images(root: Path) -> pd.DataFrame:
    """The real NIH PNGs of the data root with ``path``, ``label`` (1 = pneumonia) and ``patient_id``."""
    manifest = pd.read_csv(root / "nih" / "images_manifest.csv", dtype={"patient_id": str})
    manifest["path"] = [str(root / "nih" / "images" / name) for name in manifest["image_index"]]
    missing = [p for p in manifest["path"] if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: NIH image listed in images_manifest.csv is missing")
    return manifest.rename(columns={"pneumonia": "label"})[["path", "label", "patient_id", "view"]]


def png_to_dicom(png_path: str | os.PathLike, dicom_path: str | os.PathLike, patient_id: str, view: str) -> Path:
    """Write one 8-bit grey PNG as a DX CHEST DICOM file (MONOCHROME2, uncompressed); return its path."""
    with Image.open(png_path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(dicom_path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName = patient_id, "NIH^Benchmark"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", view if view in ("PA", "AP") else "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(dicom_path, enforce_file_format=True)
    return Path(dicom_path)


def write_dicom_folder(images: pd.DataFrame, folder: str | os.PathLike, n_files: int) -> pd.DataFrame:
    """``n_files`` DICOMs in ``folder`` made by cycling through ``images``; rows give ``path`` and ``label``.

    Each distinct source image is wrapped once and then copied byte for byte under new names, so
    building a few hundred files costs only the 98 conversions.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = images.reset_index(drop=True)
    rows = []
    for index in range(n_files):
        source = sources.iloc[index % len(sources)]
        target = folder / f"img{index:05d}_{Path(source['path']).stem}.dcm"
        first = folder / f"img{index % len(sources):05d}_{Path(source['path']).stem}.dcm"
        if index < len(sources):
            png_to_dicom(source["path"], target, str(source["patient_id"]), str(source["view"]))
        else:
            target.write_bytes(first.read_bytes())
        rows.append({"path": str(target), "label": int(source["label"]), "source": source["path"]})
    return pd.DataFrame(rows)


def kermany_images(root: Path, n_images: int, seed: int = 0) -> pd.DataFrame:
    """``n_images`` real Kermany training JPEGs (random, fixed seed) with ``path`` and ``label``."""
    df = with_images(load_kermany(root))
    train = df[df["official_split"] == "train"]
    return train.sample(n=min(n_images, len(train)), random_state=seed).reset_index(drop=True)
