"""``python -m textgen`` runs the command line, same as the ``textgen`` script."""

from textgen.cli import main

raise SystemExit(main())
