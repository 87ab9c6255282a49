"""``python -m screenshot_service``: the same as the ``screenshot-service`` command."""

from .cli import main

raise SystemExit(main())
