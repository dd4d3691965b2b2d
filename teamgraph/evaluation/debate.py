"""Multi-round debate (Du et al. 2023): members see each other's answers and may revise.

Round 0 is each member's independent answer (the same cached call as ``collect_answers``). In round
r > 0 each member is shown the other members' round r-1 answers (the short normalised answers,
not their whole replies) and its own previous answer, and answers again. These rounds are real
model calls, cached in the store with their round number; the team's answer is the majority vote
of the last round, so a debate is scored like any team from its last-round answer table.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import pandas as pd

from teamgraph.backends.base import Backend
from teamgraph.errors import InputError
from teamgraph.evaluation.answers import backend_info, item_records, make_job, run_jobs
from teamgraph.evaluation.voting import team_scores
from teamgraph.roster import Agent
from teamgraph.store import Store

__all__ = ["run_debates", "debate_answers", "debate_scores"]


def run_debates(
    teams: Mapping[str, Sequence[Agent]],
    items: pd.DataFrame,
    backends: Mapping[str, Backend],
    store: Store,
    *,
    rounds: int = 1,
    seed: int = 0,
    max_tokens: int = 16,
    identity: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Debate ``rounds`` rounds after the independent answers, for every team on every item.

    ``teams`` maps a team label to its members. The calls of all teams in a round go to the
    backends together (so a batching backend is fed well). Returns the tidy answers of rounds
    0..rounds with a ``team`` column.
    """
    if rounds < 0:
        raise InputError(f"debate rounds must be >= 0, got {rounds}")
    for label, members in teams.items():
        if len(members) < 2:
            raise InputError(f"team {label!r}: a debate needs at least 2 members")
        if len({m.name for m in members}) != len(members):
            raise InputError(f"team {label!r} lists an agent twice")
    all_agents = {m.name: m for members in teams.values() for m in members}
    identity = dict(identity) if identity is not None else backend_info(all_agents.values(), backends)
    records = item_records(items)
    frames: list[pd.DataFrame] = []
    last: dict[str, pd.DataFrame] = {}
    for r in range(rounds + 1):
        jobs, owners = [], []
        for label, members in teams.items():
            prev = last.get(label)
            lookup = {} if prev is None else {(row.agent, row.item_id): (row.answer, row.raw)
                                              for row in prev.itertuples(index=False)}
            for member in members:
                for item in records:
                    iid = str(item["item_id"])
                    kwargs: dict[str, Any] = {}
                    if r > 0:
                        kwargs["peers"] = {m.name: lookup[(m.name, iid)][0] for m in members if m.name != member.name}
                        own_answer, own_raw = lookup[(member.name, iid)]
                        # a completion sees its own short answer; a chat model its whole previous reply
                        kwargs["previous"] = own_raw if member.format == "chat" else own_answer
                    jobs.append(make_job(member, item, identity.get(member.name), seed=seed, max_tokens=max_tokens,
                                         round=r, **kwargs))
                    owners.append(label)
        frame = run_jobs(jobs, backends, store, progress=progress, desc=f"debate round {r}")
        frame.insert(0, "team", owners)
        frames.append(frame)
        last = {label: part for label, part in frame.groupby("team", sort=False)}
    return pd.concat(frames, ignore_index=True)


def debate_answers(
    team: Sequence[Agent],
    items: pd.DataFrame,
    backends: Mapping[str, Backend],
    store: Store,
    **kwargs: Any,
) -> pd.DataFrame:
    """``run_debates`` for one team (its label is the members' names joined by ``+``)."""
    label = "+".join(a.name for a in team)
    return run_debates({label: list(team)}, items, backends, store, **kwargs)


def debate_scores(
    debate: pd.DataFrame, gold: Mapping[Hashable, Any] | pd.Series, team: str, seed: int = 0
) -> dict[str, Any]:
    """Score a debated team: the majority vote of its last round (ties broken by a seeded draw)."""
    rows = debate[debate["team"] == team]
    if rows.empty:
        raise InputError(f"no debate answers for team {team!r}")
    final = rows[rows["round"] == rows["round"].max()]
    return team_scores(final, gold, sorted(final["agent"].unique()), "majority", seed=seed)
