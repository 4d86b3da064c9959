"""``python -m orchestration`` is the ``eventlake`` command."""

from orchestration.cli import main

main()
