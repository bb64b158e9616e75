"""DICOM in and out through pydicom: ultrasound cine loops and stills as grey uint8 frames.

Reading (``read_dicom``): single-frame and multi-frame (``NumberOfFrames``) files; photometric
interpretations MONOCHROME1/2, RGB and YBR_FULL / YBR_FULL_422 (colour goes to RGB, then to luma like
every other colour frame); 8-bit data as it is, deeper unsigned data scaled by ``BitsStored``.
Uncompressed transfer syntaxes decode, and so does whatever pydicom decodes with what is installed
(RLE Lossless natively, JPEG Baseline through Pillow); any other compressed file, like a corrupt one,
comes back as a one-line reason, so prepare skips and counts it (``--strict``: stops on it).

Writing (``write_dicom``, for ``kdbench data synth`` and tests): uncompressed Explicit VR Little
Endian Part 10 files with file meta; a stack of frames is an Ultrasound Multi-frame Image, one frame an
Ultrasound Image; every UID derives from ``uid_seed``, so the same seed writes the same bytes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422")
WRITABLE = ("MONOCHROME2", "RGB", "YBR_FULL")
JPEG_FAMILY = "1.2.840.10008.1.2.4."  # transfer syntaxes of JPEG, JPEG-LS and JPEG 2000


def _pydicom_major() -> int:
    """The installed pydicom's major version (3 converts YBR to RGB itself)."""
    import pydicom

    return int(pydicom.__version__.split(".")[0])


def _first_line(err: BaseException) -> str:
    """``Type: first line of the message`` (pydicom's messages span several lines)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200].rstrip(':')}" if text else type(err).__name__


def read_dicom(path: str) -> tuple[list[np.ndarray], str | None]:
    """All frames of a DICOM file as grey uint8 arrays, and a one-line reason if they cannot be read."""
    import pydicom

    with warnings.catch_warnings():  # pydicom warns about every oddity of real-world files
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as err:  # noqa: BLE001 - any parse failure of a file is a reason to skip it
            return [], f"not a readable DICOM file ({_first_line(err)})"
        try:
            problem = unsupported(ds)
            return ([], problem) if problem else (grey_frames(ds, _decoded(ds)), None)
        except Exception as err:  # noqa: BLE001 - decoders raise many types; each is a skip reason
            return [], _decode_failure(ds, err)


def unsupported(ds) -> str | None:
    """Why a parsed dataset cannot give frames (no pixel data, no transfer syntax, odd pixels), or None."""
    if "PixelData" not in ds:
        return "DICOM file without pixel data (not an image, or corrupt)"
    if getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) is None:
        return "not a readable DICOM file (no transfer syntax in its file meta)"
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in PHOTOMETRIC:
        return (f"DICOM photometric interpretation {photometric!r} is not supported; expected one of "
                f"{', '.join(PHOTOMETRIC)}")
    if int(ds.get("PixelRepresentation", 0)) != 0:
        return "DICOM with signed pixel data is not supported; expected unsigned (ultrasound is 8-bit unsigned)"
    return None


def _decoded(ds) -> np.ndarray:
    """The pixel array with YBR data in RGB (pydicom 3 converts it itself; pydicom 2's native decoders do not)."""
    arr = ds.pixel_array
    photometric = str(ds.PhotometricInterpretation)
    jpeg_family = str(ds.file_meta.TransferSyntaxUID).startswith(JPEG_FAMILY)  # pydicom 2 decodes those to RGB
    if photometric.startswith("YBR") and _pydicom_major() < 3 and not jpeg_family:
        from pydicom.pixel_data_handlers.util import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")
    return arr


def _decode_failure(ds, err: BaseException) -> str:
    """The one-line reason for pixel data pydicom could not decode."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        return (f"compressed DICOM ({syntax.name}, {syntax}) that pydicom cannot decode here ({_first_line(err)}); "
                f"install a pydicom decoding plugin or convert it to an uncompressed transfer syntax")
    return f"DICOM pixel data cannot be decoded ({_first_line(err)})"


def grey_frames(ds, arr: np.ndarray) -> list[np.ndarray]:
    """A decoded pixel array as a list of grey uint8 frames [H, W] (colour is RGB here, so RGB -> luma)."""
    import cv2

    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        arr = arr[None]
    arr = _to_uint8(arr, int(ds.get("BitsStored", 8) or 8))
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":  # 0 is white
        arr = 255 - arr
    if arr.ndim == 4:
        return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in arr]
    return [np.ascontiguousarray(f) for f in arr]


def _to_uint8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """8-bit data as it is; deeper unsigned data scaled from [0, 2**bits_stored - 1] to [0, 255]."""
    if arr.dtype == np.uint8:
        return arr
    scale = 255.0 / float(2**bits_stored - 1)
    return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def write_dicom(path: str | Path, frames: np.ndarray, photometric: str = "MONOCHROME2", uid_seed: str = "",
                patient_id: str = "", fps: float = 30.0) -> Path:
    """Write grey uint8 frames [T, H, W] (a cine loop) or [H, W] (a still) as an uncompressed ultrasound DICOM."""
    from pydicom.dataset import FileMetaDataset

    if photometric not in WRITABLE:
        raise ValueError(f"photometric {photometric!r}; expected one of {', '.join(WRITABLE)}")
    frames = np.asarray(frames, dtype=np.uint8)
    multi = frames.ndim == 3
    ds = _image_dataset(frames if multi else frames[None], photometric, uid_seed, patient_id)
    ds.SOPClassUID = US_MULTIFRAME if multi else US_IMAGE
    if multi:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = f"{1000.0 / fps:.3f}"
        ds.FrameIncrementPointer = 0x00181063  # (0018,1063) Frame Time
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
    ds.file_meta = meta
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(ds, path)
    return path


def _image_dataset(frames: np.ndarray, photometric: str, uid_seed: str, patient_id: str):
    """The dataset of frames [T, H, W]: identity, UIDs from uid_seed and the image pixel module."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.Modality = "US"
    ds.PatientID = patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
        generate_uid(entropy_srcs=[uid_seed, part]) for part in ("study", "series", "instance"))
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = photometric
    pixels = frames if photometric == "MONOCHROME2" else _colour(frames, photometric)
    ds.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    data = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)  # OB values have even length
    ds["PixelData"].VR = "OB"
    return ds


def _colour(frames: np.ndarray, photometric: str) -> np.ndarray:
    """Grey frames [T, H, W] as RGB or YBR_FULL [T, H, W, 3] (the grey copied to three channels)."""
    rgb = np.repeat(frames[..., None], 3, axis=-1)
    if photometric == "RGB":
        return rgb
    try:
        from pydicom.pixels import convert_color_space
    except ImportError:  # pydicom 2
        from pydicom.pixel_data_handlers.util import convert_color_space
    return convert_color_space(rgb, "RGB", "YBR_FULL")


def _save(ds, path: Path) -> None:
    """Write a Part 10 file (preamble, DICM, file meta) with pydicom 3 or 2."""
    import pydicom

    if _pydicom_major() >= 3:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(path, ds, write_like_original=False)
