"""Control surfaces: the local HTTP API (:mod:`.api`) and the commands it runs (:mod:`.commands`)."""
