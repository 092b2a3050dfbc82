"""Going live and staying live: the lifecycle state machine (machine), its steps (steps), its
supervision (supervise), the restart budget, holds, and the builder's notifications."""
