"""Model registry, the grey-input stem, MAC/parameter/size counting and the `kdbench models` command."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from kdbench.errors import ConfigError, DataError
from kdbench.models import create_model, list_models, model_info
from kdbench.models.info import count_macs, count_params, size_mb
from kdbench.models.registry import model_source

NAMED = ["vgg16", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100"]


def _tiny_net() -> nn.Module:
    """A hand-built net on 1 x 8 x 8 input with a plain, a depthwise, a grouped and a strided conv."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # -> 4x8x8
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise -> 4x8x8
        nn.Conv2d(4, 8, 1, groups=2),  # grouped 1x1 -> 8x8x8
        nn.Conv2d(8, 6, 3, stride=2, padding=1, bias=False),  # -> 6x4x4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )


def test_macs_of_a_hand_built_net() -> None:
    net = _tiny_net()
    expected = (
        4 * 8 * 8 * (1 * 3 * 3)  # plain conv: outputs x (C_in x k x k)
        + 4 * 8 * 8 * (1 * 3 * 3)  # depthwise: each filter sees 1 channel
        + 8 * 8 * 8 * (2 * 1 * 1)  # 2 groups: each filter sees 4 / 2 channels
        + 6 * 4 * 4 * (8 * 3 * 3)  # stride 2 halves the output side
        + 6 * 3  # linear
    )
    assert expected == 2304 + 2304 + 1024 + 6912 + 18
    assert count_macs(net, size=8) == expected
    assert count_macs(net, size=16) == 4 * (expected - 18) + 18  # convs scale with area, the Linear does not


def test_params_and_size_of_a_hand_built_net() -> None:
    net = _tiny_net()
    params = (4 * 9 + 4) + (4 + 4) + (4 * 9 + 4) + (8 * 2 + 8) + (6 * 8 * 9) + (6 * 3 + 3)
    assert count_params(net) == params
    buffers_bytes = 4 * 4 + 4 * 4 + 8  # BN running mean and var (fp32) + num_batches_tracked (int64)
    assert size_mb(net) == pytest.approx((params * 4 + buffers_bytes) / 1e6, abs=1e-12)


def test_count_macs_restores_training_mode_and_rejects_bad_size() -> None:
    net = _tiny_net().train()
    count_macs(net, size=8)
    assert net.training
    with pytest.raises(ConfigError, match="input size must be a positive integer"):
        count_macs(net, size=0)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_matmuls_of_a_vision_transformer_are_counted(device: str) -> None:
    """A tiny timm ViT by hand: patch conv, per block qkv/proj/MLP Linears and the 2 attention matmuls."""
    import kdbench.compat  # noqa: F401
    from timm.models.vision_transformer import VisionTransformer

    size, patch, width, depth, classes = 32, 8, 24, 2, 4
    with torch.device(device):  # cpu runs the fused CPU attention kernel, meta the math path
        vit = VisionTransformer(img_size=size, patch_size=patch, embed_dim=width, depth=depth, num_heads=2,
                                mlp_ratio=4, num_classes=classes)
    tokens = (size // patch) ** 2 + 1  # 16 patches + the class token
    linears = tokens * (3 * width * width + width * width + 2 * 4 * width * width)  # qkv, proj, fc1 + fc2
    attention = 2 * tokens * tokens * width  # Q @ K^T and attn @ V over all heads
    expected = width * (size // patch) ** 2 * 3 * patch * patch + depth * (linears + attention) + width * classes
    assert expected == 73_728 + 2 * (117_504 + 13_872) + 96 == 336_576
    assert count_macs(vit, size=size, channels=3) == expected


def test_vgg16_teacher_cost_matches_published_numbers() -> None:
    with torch.device("meta"):  # shapes only (skips 5 s of weight init); counts the same
        model = create_model("vgg16")
    info = model_info(model, size=224)
    # torchvision's VGG16: 138,357,544 parameters with 1000 classes; a 4-class head drops 4096*996 + 996
    assert info["params"] == 138_357_544 - 4096 * 996 - 996
    assert 15.3e9 < info["macs"] < 15.6e9  # ~15.5 GMACs at 224 px
    assert info["size_mb"] == pytest.approx(info["params"] * 4 / 1e6, rel=1e-3)
    # 112 px: the convolutions cost a quarter, the classifier (after AdaptiveAvgPool to 7x7) the same
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 4
    assert model_info(model, size=112)["macs"] - fc == pytest.approx((info["macs"] - fc) / 4, rel=1e-9)


def test_mobilenet_v3_small_cost() -> None:
    model = create_model("mobilenet_v3_small")
    info = model_info(model, size=224)
    with torch.device("meta"):
        assert model_info(create_model("mobilenet_v3_small"), size=224) == info  # meta counts = real counts
    assert 0.05e9 < info["macs"] < 0.065e9  # torchvision lists ~0.06 GFLOPs
    assert 1.4e6 < info["params"] < 1.6e6


@pytest.mark.parametrize("name", NAMED[1:])
def test_students_take_grey_frames_and_return_four_logits(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 4) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert model.arch == name and model.num_classes == 4
    assert model_source(name) == ("timm" if name == "ghostnet_100" else "torchvision")


def test_grey_stem_repeats_channel_and_applies_imagenet_normalisation() -> None:
    model = create_model("mobilenet_v3_small")
    x = torch.rand(3, 1, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(model.stem(x), (x.repeat(1, 3, 1, 1) - mean) / std, atol=1e-6)
    assert not any(k.startswith("stem.") for k in model.state_dict())  # constants, not weights
    with pytest.raises(DataError, match=r"shape \(3, 3, 16, 16\); expected \[B, 1, S, S\]"):
        model(x.repeat(1, 3, 1, 1))


def test_registry_roles_and_num_classes() -> None:
    assert list_models() == NAMED
    assert list_models("teacher") == ["vgg16"]
    assert list_models("student") == NAMED[1:]
    with pytest.raises(ConfigError, match="role 'pupil'"):
        list_models("pupil")
    model = create_model("shufflenet_v2_x1_0", num_classes=7)
    assert model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 7)
    with pytest.raises(ConfigError, match="num_classes must be a positive integer, got 0"):
        create_model("shufflenet_v2_x1_0", num_classes=0)


def test_other_torchvision_and_timm_names_fall_back_to_their_library() -> None:
    import kdbench.compat  # noqa: F401
    import timm

    from kdbench.compat import torchvision

    tv_model = create_model("resnet18")
    assert isinstance(tv_model.backbone, torchvision.models.ResNet)
    assert model_source("resnet18") == "torchvision"
    timm_model = create_model("mobilenetv3_small_050")  # a timm-only name
    assert isinstance(timm_model.backbone, timm.models.MobileNetV3)
    assert timm_model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 4)


def test_unknown_model_name_lists_known_names_and_suggests() -> None:
    with pytest.raises(ConfigError) as err:
        create_model("mobilenet_v3_smal")
    msg = str(err.value)
    assert "unknown model 'mobilenet_v3_smal'" in msg
    for name in NAMED:
        assert name in msg
    assert "Did you mean: mobilenet_v3_small" in msg


def _reachable(host: str) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=3):
            return True
    except OSError:
        return False


def test_pretrained_without_internet_fails_fast_with_a_clear_error(tmp_path) -> None:
    if _reachable("download.pytorch.org"):
        pytest.skip("download.pytorch.org is reachable: this test checks the offline error")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))  # an empty cache
    try:
        with pytest.raises(ConfigError, match=r"^could not download the pretrained weights for 'mobilenet_v3_small' .*cannot be reached.*train from scratch"):
            create_model("mobilenet_v3_small", pretrained=True)
    finally:
        torch.hub.set_dir(old)


def test_pretrained_timm_without_internet_fails_fast_with_a_clear_error() -> None:
    from kdbench.models.registry import _in_hf_cache

    if _reachable("huggingface.co") or _in_hf_cache("timm/ghostnet_100.in1k"):
        pytest.skip("huggingface.co is reachable or the weights are cached: this test checks the offline error")
    with pytest.raises(ConfigError, match=r"ghostnet_100.*cannot be reached"):
        create_model("ghostnet_100", pretrained=True)


def test_models_command_prints_a_table_for_the_chosen_size() -> None:
    from typer.testing import CliRunner

    from kdbench.cli import app

    result = CliRunner().invoke(app, ["models", "--size", "64", "-m", "mobilenet_v3_small", "-m", "resnet18"],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    expected = model_info(create_model("mobilenet_v3_small"), size=64)
    row = next(line for line in result.stdout.splitlines() if "mobilenet_v3_small" in line)  # stderr: progress
    assert f"{expected['params'] / 1e6:.3f}" in row and f"{expected['macs'] / 1e6:.1f}" in row
    assert f"{expected['size_mb']:.2f}" in row and "student" in row
    assert "64x64" in result.output
    other = next(line for line in result.stdout.splitlines() if "resnet18" in line)
    assert "other" in other and "torchvision" in other


@pytest.mark.parametrize("name,head", [("mobilenet_v3_small", "classifier.3"), ("vgg11", "classifier.6"),
                                       ("shufflenet_v2_x0_5", "fc")])
def test_pretrained_head_is_replaced_by_a_num_classes_linear(name: str, head: str) -> None:
    """What pretrained=True does after loading ImageNet weights: a fresh head, the rest untouched."""
    from kdbench.compat import torchvision
    from kdbench.models.registry import _resize_head

    with torch.device("meta"):
        net = torchvision.models.get_model(name, weights=None)  # 1000 classes, like the ImageNet weights
        features_before = {k: v.shape for k, v in net.state_dict().items() if not k.startswith(head)}
        _resize_head(net, name, 4)
    new = net.get_submodule(head)
    assert isinstance(new, nn.Linear) and new.out_features == 4
    assert {k: v.shape for k, v in net.state_dict().items() if not k.startswith(head)} == features_before


def test_batch_norm_momentum_is_raised_for_short_runs():
    """torchvision's MobileNetV3 ships BN momentum 0.01; kdbench's short runs need >= 0.1."""
    import torch.nn as nn

    from kdbench.compat import torchvision
    from kdbench.models import create_model

    raw = torchvision.models.mobilenet_v3_small(num_classes=4)
    assert min(m.momentum for m in raw.modules() if isinstance(m, nn.BatchNorm2d)) == 0.01
    model = create_model("mobilenet_v3_small")
    momenta = {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert momenta == {0.1}
