"""retake.tv broadcast appliance: puts an AI agent live on retake.tv and keeps it there.

Layers, importing downwards only:
  cli -> lifecycle / control / doctor -> chat, media (display, audio, encoder, thumbnails,
  content) -> retake (client, models, skill) -> config, credentials, errors, sanitize.
The sandbox (a local retake.tv) stands beside the client and imports none of it.
"""

__version__ = "0.1.0"
