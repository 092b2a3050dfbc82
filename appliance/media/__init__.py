"""Media: the X display, the PulseAudio sink, the encoder (FFmpeg), the content window and
the one way to run a media tool (:mod:`.tools`)."""
