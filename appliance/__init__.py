"""retake.tv broadcast appliance: puts an AI agent live on retake.tv and keeps it there.

The code is in floors, imports running downward only (import-linter checks it in CI; the
picture and the tree are in docs/architecture.md):

  cli > app : rehearse : doctor : init > up > config > control > live
      > chat | scene | voice | fleet > retake | media | sandbox > core
"""

__version__ = "0.1.0"
