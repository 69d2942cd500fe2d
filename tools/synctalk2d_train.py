#!/usr/bin/env python
"""Train a SyncTalk2D person: the SyncNet, then the U-Net (Hydra app, tools/conf/train/synctalk2d.yaml).

    python tools/synctalk2d_train.py person=people/anna
    python tools/synctalk2d_train.py person=people/anna mode=hubert unet.epochs=50 device=cuda
    python tools/synctalk2d_train.py --config-name synctalk2d_tiny person=people/anna   # a quick check
    python tools/synctalk2d_train.py --cfg job                                         # show the config

Interrupted runs resume from <out_dir>/<stage>/last.pt. The trained U-Net is
<out_dir>/unet/final.pth: lipsync backend=synctalk2d backend.person=... backend.checkpoint=...
Bad input exits with code 2 and one line.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import backends.synctalk2d.config  # noqa: F401  (registers synctalk2d_train_schema)

_exit_code = 0
PROG = Path(__file__).name


@hydra.main(config_path=str(Path(__file__).resolve().parent / "conf" / "train"), config_name="synctalk2d", version_base="1.3")
def _train(cfg: DictConfig) -> None:
    global _exit_code
    from backends.synctalk2d.training import train_person
    from lipsync.config import config_error_line
    from lipsync.errors import ConfigError, LipsyncError, report
    from lipsync.progress import Reporter

    try:
        settings = OmegaConf.to_object(cfg)
    except Exception as err:
        _exit_code = report(ConfigError(config_error_line(err)), PROG)
        return
    reporter = Reporter(quiet=settings.quiet)
    try:
        results = train_person(settings, reporter)
    except LipsyncError as err:
        reporter.close()
        _exit_code = report(err, PROG)
        return
    unet = results["unet"]
    reporter.summary(checkpoint=unet.checkpoint, steps=len(unet.losses), loss=f"{unet.losses[-1]:.4f}" if unet.losses else "-")


def main() -> int:
    _train()
    return _exit_code


if __name__ == "__main__":
    sys.exit(main())
