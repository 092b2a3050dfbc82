"""What viewers see drawn on the display: text fed from files (:mod:`.feeds`)."""
