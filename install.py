# Negative Prompt Delay needs nothing beyond what the WebUI already installs (torch, gradio):
# this file deliberately installs nothing, so a WebUI start-up never reinstalls or upgrades packages.
