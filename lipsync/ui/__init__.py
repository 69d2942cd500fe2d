"""The web app, ``lipsync-ui``: a Gradio page and its HTTP API over the same ``Pipeline`` the
``lipsync`` command runs. ``lipsync.ui.app`` imports gradio; this package's other modules do not."""
