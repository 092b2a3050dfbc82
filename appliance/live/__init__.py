"""Going live and staying live: the lifecycle state machine and its restart budget."""
