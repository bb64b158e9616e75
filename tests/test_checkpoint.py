"""Checkpoints: round trip, plain state dicts, clear mismatch errors, and refusal of unsafe pickles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdbench import __version__
from kdbench.errors import ConfigError, DataError
from kdbench.models import create_model
from kdbench.models.checkpoint import load_checkpoint, save_checkpoint

ARCH = "shufflenet_v2_x1_0"  # small and quick to build


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(1)
    m = create_model(ARCH)
    with torch.no_grad():  # make the weights and BN statistics differ from any fresh init
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for name, b in m.named_buffers():
            if name.endswith("running_var"):
                b.fill_(1.5)
    return m.eval()


def test_round_trip_restores_weights_outputs_and_metadata(model, tmp_path: Path) -> None:
    path = save_checkpoint(model, tmp_path / "run" / "best.pt", arch=ARCH, num_classes=4, input_size=64,
                           extra={"method": "ctkd", "hparams": {"temperature": 4.0, "schedule": "cosine"}})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"arch", "num_classes", "input_size", "state_dict", "kdbench_version", "method", "hparams",
                        "tensor_sha256"}
    loaded, meta = load_checkpoint(path)
    assert meta == {"arch": ARCH, "num_classes": 4, "input_size": 64, "kdbench_version": __version__,
                    "method": "ctkd", "hparams": {"temperature": 4.0, "schedule": "cosine"}}
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not list(tmp_path.joinpath("run").glob("*.tmp"))  # written atomically


def test_plain_state_dict_needs_arch(model, tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ConfigError, match="plain state dict with no metadata; pass arch="):
        load_checkpoint(path)
    loaded, meta = load_checkpoint(path, arch=ARCH)
    assert meta == {"arch": ARCH, "num_classes": 4}
    assert torch.equal(loaded.state_dict()["backbone.fc.weight"], model.state_dict()["backbone.fc.weight"])
    bare = tmp_path / "bare.pt"  # the torchvision model's own keys, without the kdbench wrapper
    torch.save(model.backbone.state_dict(), bare)
    loaded, _ = load_checkpoint(bare, arch=ARCH)
    assert torch.equal(loaded.state_dict()["backbone.conv1.0.weight"], model.state_dict()["backbone.conv1.0.weight"])


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    three = create_model(ARCH, num_classes=3)
    path = tmp_path / "lying.pt"
    torch.save({"arch": ARCH, "num_classes": 4, "input_size": 64, "state_dict": three.state_dict()}, path)
    with pytest.raises(ConfigError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "does not match arch 'shufflenet_v2_x1_0' with num_classes=4" in msg
    assert "backbone.fc.weight: checkpoint [3, 1024] vs model [4, 1024]" in msg
    assert "backbone.fc.bias: checkpoint [3] vs model [4]" in msg
    assert "missing keys" not in msg and "unexpected keys" not in msg


def test_missing_and_unexpected_keys_are_named(model, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    del state["backbone.fc.bias"]
    state["backbone.extra_head.weight"] = torch.zeros(2)
    path = tmp_path / "edited.pt"
    torch.save({"arch": ARCH, "num_classes": 4, "input_size": 64, "state_dict": state}, path)
    with pytest.raises(ConfigError, match=r"missing keys \(1\): backbone.fc.bias; unexpected keys \(1\): "
                                          r"backbone.extra_head.weight"):
        load_checkpoint(path)


def test_wrong_architecture_lists_keys_with_a_count(model, tmp_path: Path) -> None:
    path = save_checkpoint(model, tmp_path / "x.pt", arch="mobilenet_v3_small", num_classes=4, input_size=64)
    with pytest.raises(ConfigError, match=r"missing keys \(\d+\): backbone\.features\.0\.0\.weight.*and \d+ more"):
        load_checkpoint(path)
    with pytest.raises(ConfigError, match="holds arch 'mobilenet_v3_small', but arch='vgg16' was requested"):
        load_checkpoint(path, arch="vgg16")


def test_malicious_pickle_is_refused_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the marker file when unpickled

    path = tmp_path / "evil.pt"
    torch.save({"arch": ARCH, "num_classes": 4, "input_size": 64, "state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(DataError, match=r"refusing to load checkpoint .*evil.pt.*weights_only=True"):
        load_checkpoint(path)
    assert not marker.exists()


def test_unreadable_and_missing_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"checkpoint .*nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match="junk.pt"):
        load_checkpoint(junk)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(DataError, match="holds a list; expected a dict with 'arch' and 'state_dict'"):
        load_checkpoint(listing)


def test_extra_metadata_must_be_safe_to_load_and_not_reserved(model, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"extra\['out'\] = PosixPath.*type PosixPath"):
        save_checkpoint(model, tmp_path / "a.pt", arch=ARCH, num_classes=4, input_size=64, extra={"out": tmp_path})
    with pytest.raises(ConfigError, match=r"\['arch'\] clash with reserved keys"):
        save_checkpoint(model, tmp_path / "b.pt", arch=ARCH, num_classes=4, input_size=64, extra={"arch": "x"})
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def _largest_record_offset(path: Path) -> tuple[int, int]:
    """(file offset, size) of the data of the largest entry in a torch zip checkpoint."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_zeroed_bytes_inside_a_checkpoint_are_detected(model, tmp_path: Path) -> None:
    path = save_checkpoint(model, tmp_path / "best.pt", arch=ARCH, num_classes=4, input_size=64)
    start, size = _largest_record_offset(path)
    data = bytearray(path.read_bytes())
    data[start + size // 2: start + size // 2 + 256] = bytes(256)  # a bad sector inside one weight tensor
    path.write_bytes(bytes(data))
    raw = torch.load(path, weights_only=True)  # torch itself notices nothing
    assert set(raw["state_dict"]) == set(model.state_dict())
    with pytest.raises(DataError, match=r"^checkpoint .*best.pt is corrupt: its tensors hash to [0-9a-f]{16}, "
                                        r"but it was saved with tensor_sha256 [0-9a-f]{16}; restore or retrain it$"):
        load_checkpoint(path)


def test_checkpoint_without_checksum_still_loads(model, tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"arch": ARCH, "num_classes": 4, "input_size": 64, "state_dict": model.state_dict(),
                "kdbench_version": "0.0.1"}, path)
    loaded, meta = load_checkpoint(path)
    assert "tensor_sha256" not in meta
    assert torch.equal(loaded.state_dict()["backbone.fc.weight"], model.state_dict()["backbone.fc.weight"])


def test_full_disk_while_saving_is_one_line(tmp_path: Path) -> None:
    """RLIMIT_FSIZE in a child process: the checkpoint write fails as on a full disk."""
    import subprocess
    import sys

    code = ("import resource, signal, sys\n"
            "from kdbench.models import create_model\n"
            "from kdbench.models.checkpoint import save_checkpoint\n"
            "m = create_model('mobilenet_v3_small')\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
            "save_checkpoint(m, sys.argv[1], arch='mobilenet_v3_small', num_classes=4, input_size=64)\n")
    out = tmp_path / "run" / "best.pt"
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("kdbench.errors.DataError: cannot write checkpoint ") and "best.pt" in last, r.stderr
    assert not out.exists() and not list(out.parent.glob("*.tmp"))


def test_checkpoint_size_estimate_matches_a_saved_file(model, tmp_path: Path) -> None:
    from kdbench.models.checkpoint import estimate_checkpoint_mb

    path = save_checkpoint(model, tmp_path / "m.pt", arch=ARCH, num_classes=4, input_size=64)
    assert estimate_checkpoint_mb(ARCH) == pytest.approx(path.stat().st_size / 2**20, rel=0.05)
