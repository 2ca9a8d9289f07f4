"""Test stand-in for the parts of AUTOMATIC1111 stable-diffusion-webui v1.10.1 that the extension touches.

Put this directory on ``sys.path`` (``harness`` does it on import) so that ``from modules import ...`` and
``import k_diffusion`` resolve to the stand-in, exactly as they resolve to the WebUI inside the WebUI.
"""
