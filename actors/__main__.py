"""``python -m actors``: the ``tradingd`` command (``actors.system.cli``)."""

from actors.system.cli import main

raise SystemExit(main())
