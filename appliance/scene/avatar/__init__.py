"""The agent's face in the scenes' ``avatar`` regions (docs/avatar.md): the drawn character
(:mod:`.character`), its motion on the audio clock (:mod:`.motion`), PNG packs (:mod:`.pack`),
and the drawing into the region with cached layers (:mod:`.view`)."""
