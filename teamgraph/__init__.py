"""teamgraph: find teams of language models that collaborate well, from the geometry of their dialogues.

>>> import teamgraph as tg
>>> values = tg.relationship_values(conversations, metric="cumulative_cosine")   # doctest: +SKIP
>>> partition = tg.find_communities(tg.build_graph(values, topic="mathematics"))  # doctest: +SKIP
"""
from ._version import __version__
from .communities import Partition, find_communities
from .conversations import Conversation, Utterance, read_conversations, write_conversations
from .embedding import Embedder
from .errors import BackendError, ConfigError, InputError, MissingDependencyError, TeamgraphError
from .graph import Threshold, build_graph, build_graphs
from .metrics import METRICS, cross_speaker_cosine, cumulative_cosine, echo_discounted_cosine, mean_cosine
from .pairs import select_pairs
from .scoring import relationship_values, score_conversations
from .store import Store
from .significance import permutation_test
from .sweep import compare_metrics, sweep
from .teams import export_teams, teams_document
from .validation import label_agreement

__all__ = [
    "__version__", "Partition", "find_communities", "Conversation", "Utterance", "read_conversations",
    "write_conversations", "Embedder", "BackendError", "ConfigError", "InputError", "MissingDependencyError",
    "TeamgraphError", "Threshold", "build_graph", "build_graphs", "METRICS", "cross_speaker_cosine",
    "cumulative_cosine", "echo_discounted_cosine", "mean_cosine", "relationship_values", "score_conversations",
    "Store", "export_teams", "teams_document", "permutation_test", "label_agreement", "sweep", "compare_metrics",
    "select_pairs",
]
