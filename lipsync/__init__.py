"""lipsync: speech to talking-head video.

    import lipsync
    result = lipsync.generate(audio="speech.wav", image="portrait.jpg", output="out.mp4")
    pipe = lipsync.load("viseme", **{"backend.mouth_intensity": 1.2})
    pipe.generate(audio="speech.wav", video="talk.mp4", output="dub.mp4")
"""
__version__ = "0.1.0"
