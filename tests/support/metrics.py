"""``/metrics`` as tests read it: parsed by prometheus_client's own parser, one sample looked up by labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Metrics:
    """One scrape of a service's ``/metrics``."""

    def __init__(self, text: str) -> None:
        self._samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    @classmethod
    async def read(cls, service: httpx.AsyncClient) -> Metrics:
        response = await service.get("/metrics")
        response.raise_for_status()
        return cls(response.text)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``; 0 when there is none
        (a counter whose label has not been seen yet)."""
        return sum(
            value
            for sample, have, value in self._samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )
