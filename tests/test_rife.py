"""RIFE interpolator: checkpoint key handling, strict loading, and in-betweens on real frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lipsync.conformance import read_json
from lipsync.errors import MissingWeightsError, WeightsError
from lipsync.interp.config import RifeInterpolatorConfig
from lipsync.interp.rife import IFNet, flownet_remap
from lipsync.registry import construct
from lipsync.weights import load_into, meta_state_dict


def test_remap_keeps_only_ddp_keys_and_strips_the_prefix():
    state = {"module.block0.conv0.0.0.weight": 1, "module.block_tea.conv1.2.bias": 2, "stray.weight": 3}
    assert flownet_remap(state) == {"block0.conv0.0.0.weight": 1, "block_tea.conv1.2.bias": 2}


def test_published_layout_loads_strictly(conformance):
    manifest = read_json(conformance / "sonic" / "manifest_rife_flownet.json")
    with torch.device("meta"):
        net = IFNet()
    load_into(net, meta_state_dict(manifest["keys"]), remap=flownet_remap)
    assert sum(p.numel() for p in net.parameters()) == manifest["num_params"]
    broken = {k: v for k, v in manifest["keys"].items() if "block_tea" not in k}
    with pytest.raises(WeightsError, match="missing block_tea"):
        load_into(net, meta_state_dict(broken), remap=flownet_remap)


@pytest.fixture
def rife(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in IFNet().state_dict().items()}, path)
    interp = construct(RifeInterpolatorConfig, checkpoint=str(path), batch_size=2)
    interp.load("cpu")
    return interp


def test_constant_frames_stay_constant_at_any_size(rife):
    # warping a flat picture gives the same picture whatever the flow; 50x70 needs padding to 64x96
    first = np.full((3, 50, 70, 3), 120, np.uint8)
    middle = rife.between(first, first.copy(), 0.5)
    assert middle.shape == first.shape and middle.dtype == np.uint8
    assert np.abs(middle.astype(int) - 120).max() <= 1


def test_quarter_is_the_middle_of_the_first_half(rife):
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    ta, tb = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 for x in (a, b))
    expected = rife.middle(ta, rife.middle(ta, tb))
    quarter = rife.between(a, b, 0.25)
    assert np.abs(quarter.astype(int) - np.rint(expected[0].permute(1, 2, 0).numpy() * 255)).max() <= 1


def test_upsample_doubles_the_rate(rife):
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    lifted = rife.upsample(frames, 2, previous=frames[0])
    assert lifted.shape == (6, 32, 32, 3)
    assert np.array_equal(lifted[1::2], frames)


def test_missing_checkpoint_names_the_download():
    with pytest.raises(MissingWeightsError, match="lipsync-weights download rife.flownet"):
        construct(RifeInterpolatorConfig).check_weights()
