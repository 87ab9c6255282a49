"""What the fault tests measured (burst latencies, process counts before and after each fault),
printed in pytest's summary so every run, CI's included, shows them."""

from __future__ import annotations

FAULT_FIGURES: list[str] = []
