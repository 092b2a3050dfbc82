"""What every layer uses: errors, files (atomic writes and the state folder's layout),
sanitizing untrusted text, the log format, running child programs (:mod:`.proc`), the persisted
state (:mod:`.store`) and the base of every settings model. Imports nothing above it."""
