"""lipsync: speech to talking-head video.

    import lipsync
    result = lipsync.generate(audio="speech.wav", image="portrait.jpg", output="out.mp4")
    pipe = lipsync.load("viseme", **{"backend.mouth_intensity": 1.2})
    pipe.generate(audio="speech.wav", video="talk.mp4", output="dub.mp4")
"""
__version__ = "0.1.0"

__all__ = ["generate", "load", "Result"]


def __getattr__(name: str):
    # (``lipsync.compose`` is the masks/blending package; the config composer is lipsync.api.compose.)
    # Imported on first use: `import lipsync` stays cheap (no torch, no Hydra) for tools that only
    # need a submodule.
    if name in ("generate", "load"):
        from lipsync import api

        return getattr(api, name)
    if name == "Result":
        from lipsync.pipeline import Result

        return Result
    raise AttributeError(f"module 'lipsync' has no attribute {name!r}")
