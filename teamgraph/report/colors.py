"""Community colours of the report: the palette of :func:`teamgraph.viz.community_colors`, as CSS."""
from __future__ import annotations

from typing import Mapping

from ..communities import Partition

__all__ = ["topic_colors"]


def topic_colors(partitions: Mapping[str, Partition]) -> dict[str, dict[str, str]]:
    """Topic -> agent -> ``#rrggbb``: one colour per team, grey for isolates.

    Teams are matched to the teams of the ``all`` graph (else of the first topic) by overlap
    (:func:`teamgraph.viz.aligned_team_colors`), so a group of agents keeps its colour from topic to topic.
    """
    from matplotlib.colors import to_hex

    from ..viz import community_colors

    reference = partitions.get("all") or next(iter(partitions.values()), None)
    return {topic: {name: to_hex(color) for name, color in sorted(community_colors(p, reference).items())}
            for topic, p in partitions.items()}
