#!/usr/bin/env python
"""Prepare a person for the SyncTalk2D backend: one talking video -> a dataset folder.

    python tools/synctalk2d_prepare.py talk.mp4 people/anna [--modes ave,hubert] [--landmarks DIR]

Writes people/anna/{full_body_img/*.jpg, landmarks/*.lms, aud.wav, aud_ave.npy, aud_hu.npy}
(upstream SyncTalk_2D's layout): frames resampled to 25 fps whatever the video's rate,
landmarks from MediaPipe's face mesh mapped to upstream's 110-point layout (or copied from
existing upstream .lms files with --landmarks), audio features per mode. Record a few minutes
of the person facing the camera, steady light, one voice. Exits 2 with one line on bad input.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="the talking recording (any container, any frame rate)")
    parser.add_argument("person", help="output folder (frames and landmarks in it are replaced)")
    parser.add_argument("--modes", default="ave", help="audio features to compute: ave, hubert or ave,hubert")
    parser.add_argument("--landmarks", help="folder of upstream .lms files (<i>.lms per 25 fps frame) to use instead of MediaPipe")
    parser.add_argument("--ave-checkpoint", help="local audio_visual_encoder.pth (default: the registered ave.encoder)")
    parser.add_argument("--hubert-dir", help="local HuBERT-Large folder (default: the registered hubert.* files)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for the audio encoders")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the saved frames")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)

    from backends.synctalk2d.prepare import prepare_person
    from lipsync.errors import LipsyncError, report
    from lipsync.progress import Reporter

    reporter = Reporter()
    try:
        person = prepare_person(
            args.video, args.person, [m.strip() for m in args.modes.split(",") if m.strip()], args.landmarks,
            args.ave_checkpoint, args.hubert_dir, args.device, args.quality, reporter,
        )  # fmt: skip
    except LipsyncError as err:
        reporter.close()
        return report(err, parser.prog, args.verbose)
    reporter.summary(person=person.root, frames=f"{len(person)} at 25 fps ({len(person) / 25:.1f} s)", size=f"{person.width}x{person.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
