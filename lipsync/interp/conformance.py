"""Conformance handlers of the interpolators (``rife.*`` fixtures)."""
from __future__ import annotations

import torch

from lipsync.conformance import Fixture, manifest, parity
from lipsync.interp.rife import IFNet, flownet_remap
from lipsync.weights import load_into, manifest_problems


@parity("rife.ifnet")
def rife_ifnet(fx: Fixture) -> dict:
    net = IFNet().eval()
    load_into(net, fx.weights)  # fixture keys are already stripped of "module."
    scales = tuple(float(s) for s in fx.config.get("scale_list", (4.0, 2.0, 1.0)))
    with torch.no_grad():
        flow, mask, merged = net(fx.inputs["img0"].float(), fx.inputs["img1"].float(), scales)
    return {"merged": merged, "interp_clamped": merged.clamp(0, 1), "flow": flow, "mask": mask}


@manifest("rife.ifnet")
def rife_ifnet_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        net = IFNet()
    return manifest_problems(net, m, remap=flownet_remap)
