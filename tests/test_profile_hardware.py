"""Hardware profiles: the shipped ones load with their documented values; bad ones name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdbench.errors import ConfigError
from kdbench.profile.hardware import load_profile

from profile_fixtures import write_profile


def test_shipped_profiles_describe_their_targets():
    rpi4 = load_profile("rpi4")
    assert rpi4.threads == 4 and rpi4.cpu["cores"] == 4 and rpi4.cpu["clock_ghz"] == 1.5
    assert set(rpi4.runtimes) == {"onnxruntime", "openvino"}
    assert rpi4.constraints == {"min_fps": 30.0, "max_memory_mb": 50.0}
    assert rpi4.peak_gmacs() == pytest.approx(48.0)
    assert 1 in rpi4.batch_sizes and max(rpi4.batch_sizes) > 1
    gpu = load_profile("gpu")
    assert gpu.device == "gpu" and "onnxruntime-cuda" in gpu.runtimes and "pytorch-cuda" in gpu.runtimes
    assert set(gpu.precisions) == {"fp32", "fp16"}
    x86 = load_profile("x86")
    assert "onnxruntime" in x86.runtimes and x86.peak_gmacs() is not None


def test_user_profile_by_path(tmp_path: Path):
    path = write_profile(tmp_path / "mybox.toml", name="mybox", threads=3, batches="[4, 1]")
    prof = load_profile(str(path))
    assert prof.name == "mybox" and prof.threads == 3 and prof.batch_sizes == (1, 4)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('name = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = "four"\nbatch_sizes = [1]\n', "run.threads"),
        ('name = "a"\n[run]\nruntimes = ["tflite"]\nthreads = 1\nbatch_sizes = [1]\n', "run.runtimes"),
        ('name = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\nbatch_sizes = [8]\n', "run.batch_sizes"),
        ('name = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\n', "run.batch_sizes"),
        ('name = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\nbatch_sizes = [1]\nbatch = 2\n', "run.batch"),
        ('name = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\nbatch_sizes = [1]\n[constraints]\nmin_fps = -3\n',
         "constraints.min_fps"),
        ('nmae = "a"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\nbatch_sizes = [1]\n', "nmae"),
        ('name = "a b"\n[run]\nruntimes = ["onnxruntime"]\nthreads = 1\nbatch_sizes = [1]\n', "name"),
    ],
)
def test_malformed_profile_names_the_key(tmp_path: Path, body: str, key: str):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert f"'{key}'" in str(info.value) and str(path) in str(info.value)


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="rpi4"):
        load_profile("no-such-target")


def test_invalid_toml_is_a_config_error(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(str(path))
