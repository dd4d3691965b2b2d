"""Fault figures (issue 12): the ``openai`` backend through a fault-injecting proxy in front of a real server.

    python benchmarks/bench_faults.py [--quick] [--rate 0.3] [--seed 0] [--json OUT]

Starts ``python -m llama_cpp.server`` with the packaged Gemma 3 270M on 127.0.0.1 (tests/servers.py) and
``_fault_proxy.FaultProxy`` in front of it (standard library only, also on 127.0.0.1). The proxy fails a
seeded ``--rate`` of the calls with a seeded mix of HTTP 500, 503, 429 with ``Retry-After``, read timeouts
(nothing sent for longer than the client's timeout), connection resets (TCP RST), malformed JSON bodies
and bodies cut off mid-transfer, and forwards the rest unchanged; ``GET /v1/models`` is always forwarded,
so the backend's preflight passes and the faults land on the generation calls.

The same small ``teamgraph.pipeline.run`` (agents on ``gemma-3-270m``, transcript format, one topic,
4 turns, 16 tokens, fixed seeds, one request at a time so the faults are the same on every run with the
same seed; backend ``max_retries`` 8, ``backoff`` 0.05 s, ``timeout`` 15 s) runs directly against the server
and through the proxy, each on a fresh store in a temporary folder. Reported: calls through the proxy,
faults by kind, the client's retries (its ``teamgraph.backends.openai`` warnings, and the proxy's calls
minus the calls it forwarded), the time overhead, and PASS/MISS on "same conversations" (their count and
each one's turns; texts may differ where a retry is sampled again, so identical texts are only counted).
Then the proxy fails every call (``teamgraph run`` in a subprocess, fresh store): PASS when it stops with
exit code 2 and one ``teamgraph: error:`` line naming the backend failure; then the proxy forwards again
and a rerun on that store (through the proxy, same URL, so the same conversation ids): PASS when it
completes every conversation. ``--quick`` runs this failure part on 3 of the 4 agents.

The server runs on one thread by default (``--threads``): what is measured here is fault handling, not
speed, and a llama.cpp server with as many threads as cores slows down many times over when other work
competes for them, which turns calls into client timeouts that nobody injected. Retries the proxy did
not cause (the direct run's, and the forwarding-only rerun's) are reported beside the others.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from _fault_proxy import KINDS, FaultProxy  # noqa: E402

AGENTS = [
    ("Ada", "Ada is a mathematician who proves theorems about prime numbers and always asks for a proof."),
    ("Galen", "Galen is a physician who diagnoses patients from their symptoms and prescribes treatment."),
    ("Euler", "Euler is a mathematician who computes integrals, series and equations step by step."),
    ("Florence", "Florence is a nurse who cares for patients in hospital wards and talks about hygiene and infection."),
    ("Noether", "Noether is an algebraist who explains groups, rings and symmetry with precise definitions."),
]
RETRY_LOGGER = "teamgraph.backends.openai"  # the openai backend's logger: one warning per retry


def config_dict(base_url: str, n_agents: int, topics: list[str], turns: int, max_tokens: int, args: Any) -> dict:
    return {
        "name": "bench-faults",
        "backends": {"srv": {"type": "openai", "base_url": base_url, "concurrency": args.concurrency,
                             "timeout": args.timeout, "max_retries": args.max_retries, "backoff": args.backoff}},
        "defaults": {"backend": "srv", "model": "gemma-3-270m", "format": "transcript",
                     "sampling": {"max_tokens": max_tokens, "temperature": 0.8, "top_p": 0.95, "repeat_penalty": 1.3}},
        "agents": [{"name": n, "persona": p} for n, p in AGENTS[:n_agents]],
        "topics": topics,
        "conversation": {"turns": turns, "seed": 0, "repeats": 1},
        "communities": {"n_seeds": 2, "n_permutations": 0},
    }


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if ", retry " in message:  # "agent A: <reason> from <url>, retry i/n in ds"
            reason = message.split(": ", 1)[-1].split(" from ", 1)[0]
            self.reasons["timeout" if reason.startswith("timed out") else reason.split(":")[0][:40]] += 1


def shape(conversations: list) -> dict[tuple[str, str, str], list[Any]]:
    """(agent_a, agent_b, topic) -> [(speaker, status, text), ...] per turn."""
    return {(c.agent_a, c.agent_b, c.topic): [(u.speaker, u.status, u.text) for u in c.utterances] for c in conversations}


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=0.3, help="share of calls the proxy fails (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="proxy seed: which calls fail and how")
    p.add_argument("--concurrency", type=int, default=1,
                   help="backend concurrency (default 1: calls reach the proxy in a fixed order, so the faults repeat)")
    p.add_argument("--timeout", type=float, default=15.0, help="backend timeout in seconds (the proxy holds longer)")
    p.add_argument("--max-retries", type=int, default=8)
    p.add_argument("--backoff", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1, help="server threads (default 1: steady on a busy machine)")
    args = p.parse_args()
    # quick: 4 agents -> 6 conversations x 4 turns = 24 generation calls, plus retries: 9 or more faults at 30%
    n_agents, topics = (4, ["mathematics"]) if args.quick else (5, ["mathematics", "medicine"])
    fail_agents = 3 if args.quick else n_agents  # the failure-and-resume part
    turns, max_tokens = 4, 16

    import yaml

    from teamgraph.config import config_from_dict
    from teamgraph.models import packaged_gguf_path
    from teamgraph.pipeline import run as pipeline_run
    from teamgraph.records import read_run_records
    from teamgraph.store import Store
    from tests.servers import _warm_up, llama_server

    retries = _RetryCounter()
    logging.getLogger(RETRY_LOGGER).addHandler(retries)
    results: list[C.Result] = []
    detail: dict[str, Any] = {"agents": n_agents, "topics": topics, "turns": turns, "max_tokens": max_tokens,
                              "rate": args.rate, "seed": args.seed, "concurrency": args.concurrency,
                              "timeout_s": args.timeout, "max_retries": args.max_retries, "backoff_s": args.backoff}

    def run_once(url: str, out: Path, agents: int = n_agents) -> tuple[float, Any, dict[str, int]]:
        """Wall seconds, the pipeline's result, and the client's retries during it, by reason."""
        config = config_from_dict(config_dict(url, agents, topics, turns, max_tokens, args))
        retries.reasons.clear()
        t0 = time.perf_counter()
        res = pipeline_run(config, out_dir=out, progress=False, figures=False)
        return time.perf_counter() - t0, res, dict(retries.reasons)

    threads = args.threads or os.cpu_count() or 2
    detail["server_threads"] = threads
    with tempfile.TemporaryDirectory(prefix="tg-bench-faults-") as tmp_name, \
            llama_server(packaged_gguf_path(), n_ctx=1024, n_threads=threads) as server_url:
        tmp = Path(tmp_name)
        _warm_up(server_url)
        upstream = server_url.rsplit("/v1", 1)[0]
        with FaultProxy(upstream, rate=args.rate, seed=args.seed, client_timeout=args.timeout,
                        retry_after=1.0) as proxy:
            # 1. directly against the server
            wall_direct, direct, retries_direct = run_once(server_url, tmp / "direct")
            print(f"  direct: {wall_direct:.1f}s, {len(direct.conversations)} conversations, "
                  f"{sum(retries_direct.values())} retries  [load {C.load_average()}]", flush=True)
            # 2. the same run through the proxy, faulting a seeded share of the calls
            wall_proxy, proxied, retries_proxy = run_once(proxy.url, tmp / "proxied")
            stats = proxy.stats()
            n_retries = sum(retries_proxy.values())
            print(f"  through the proxy: {wall_proxy:.1f}s, {len(proxied.conversations)} conversations, "
                  f"{n_retries} retries  [load {C.load_average()}]", flush=True)

            # 3. every call fails: `teamgraph run` must stop with a BackendError, exit 2, one line
            proxy.set_mode("fail")
            proxy.reset_counts()
            fail_dir = tmp / "fail"
            fail_dir.mkdir()
            cfg_path = fail_dir / "config.yaml"
            cfg_path.write_text(yaml.safe_dump(config_dict(proxy.url, fail_agents, topics, turns, max_tokens, args)))
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(C.ROOT), os.environ.get("PYTHONPATH")]))}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "teamgraph", "run", str(cfg_path), "--out", str(fail_dir),
                                   "--quiet"], cwd=C.ROOT, env=env, capture_output=True, text=True, timeout=600)
            wall_fail = time.perf_counter() - t0
            fail_stats = proxy.stats()
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            warnings = [ln for ln in lines if ln.startswith("teamgraph: WARNING:") and ", retry " in ln]
            other = [ln for ln in lines if ln not in warnings]
            stopped = (proc.returncode == 2 and len(other) == 1 and other[0].startswith("teamgraph: error: agent ")
                       and "Traceback" not in proc.stderr)
            with Store(fail_dir / "store.sqlite") as store:
                left = store.counts()
            records = read_run_records(fail_dir / "store.sqlite")
            print(f"  every call failing: exit {proc.returncode} after {wall_fail:.1f}s, {len(warnings)} retry warnings; "
                  f"{other[-1] if other else '(no error line)'}", flush=True)

            # 4. the proxy forwards again: a rerun on the same store completes every conversation
            proxy.set_mode("forward")
            proxy.reset_counts()
            wall_resume, resumed, retries_resume = run_once(proxy.url, fail_dir, fail_agents)
            resume_stats = proxy.stats()
            records_after = read_run_records(fail_dir / "store.sqlite")
            print(f"  rerun, proxy forwarding: {wall_resume:.1f}s, {len(resumed.conversations)} conversations, "
                  f"{sum(retries_resume.values())} retries  [load {C.load_average()}]", flush=True)

    # -- figures ---------------------------------------------------------------------------------
    expected = n_agents * (n_agents - 1) // 2 * len(topics)
    expected_fail = fail_agents * (fail_agents - 1) // 2 * len(topics)
    a, b = shape(direct.conversations), shape(proxied.conversations)
    same_turns = [k for k in a if k in b and len(a[k]) == len(b[k]) == turns
                  and [s for s, _, _ in a[k]] == [s for s, _, _ in b[k]]]
    same_ok = len(a) == len(b) == expected and len(same_turns) == expected
    n_utt = sum(len(v) for v in a.values())
    identical = sum(x[2] == y[2] for k in same_turns for x, y in zip(a[k], b[k]))
    failed_turns = sum(st == "error" for v in b.values() for _, st, _ in v)
    empty = {"direct": sum(st == "empty" for v in a.values() for _, st, _ in v),
             "proxied": sum(st == "empty" for v in b.values() for _, st, _ in v)}
    gen_path = "/v1/completions"
    calls, forwarded = stats["calls"].get(gen_path, 0), stats["forwarded"].get(gen_path, 0)
    faults = stats["faults"]
    n_faults = sum(faults.values())
    fault_text = ", ".join(f"{k} {v}" for k, v in faults.items())
    conv_direct = direct.timings.get("conversations_s") or wall_direct
    conv_proxy = proxied.timings.get("conversations_s") or wall_proxy
    conv_resume = resumed.timings.get("conversations_s") or wall_resume
    # per generated utterance: the rerun may have fewer agents than the direct run
    utt_resume = max(1, expected_fail * turns - (left.get("utterances") or 0))
    forward_only = (conv_resume / utt_resume) / (conv_direct / (expected * turns))
    gaps = stats["retry_after_gaps_s"]
    detail.update({
        "proxy_calls": stats["calls"], "proxy_forwarded": stats["forwarded"], "faults": faults,
        "retries_logged": retries_proxy, "retries_logged_total": n_retries, "client_gone": stats["client_gone"],
        "retries_direct": retries_direct, "retries_resume": retries_resume,
        "calls_minus_forwarded": calls - forwarded, "wall_s": {"direct": wall_direct, "proxied": wall_proxy,
                                                               "fail": wall_fail, "resume": wall_resume},
        "conversations_s": {"direct": conv_direct, "proxied": conv_proxy, "resume_forwarding": conv_resume},
        "conversations": {"direct": len(a), "proxied": len(b), "expected": expected},
        "identical_texts": f"{identical}/{n_utt}", "failed_turns_proxied": failed_turns, "empty_turns": empty,
        "retry_after_s": 1.0, "gaps_after_429_s": gaps,
        "fail_run": {"exit": proc.returncode, "retry_warnings": len(warnings), "other_lines": other[-3:],
                     "faults": fail_stats["faults"], "calls": fail_stats["calls"], "store_counts": left,
                     "records": [r.get("status") for r in records]},
        "resume_run": {"conversations": len(resumed.conversations), "expected": expected_fail,
                       "calls": resume_stats["calls"], "client_gone": resume_stats["client_gone"],
                       "records": [r.get("status") for r in records_after]},
    })
    results += [
        C.result("faults.calls", f"generation calls through the proxy (rate {args.rate:g}, seed {args.seed})", calls,
                 "calls", detail=detail, note=f"forwarded {forwarded}; /v1/models forwarded always "
                                              f"({stats['calls'].get('/v1/models', 0)} calls)"),
        C.result("faults.injected", "faults injected", n_faults, "faults", detail=detail, note=fault_text),
        C.result("faults.retries", "client retries (its warnings)", n_retries, "retries", detail=detail,
                 note=f"proxy calls - forwarded = {calls - forwarded} ({n_faults} faults, {stats['client_gone']} "
                      f"abandoned on the client's timeout); "
                      + ", ".join(f"{k} {v}" for k, v in sorted(retries_proxy.items()))
                      + f"; not injected: direct run {sum(retries_direct.values())}, "
                        f"forwarding-only rerun {sum(retries_resume.values())}"),
        C.result("faults.overhead", "conversation time through the faulting proxy / direct", conv_proxy / conv_direct,
                 "x", detail=detail,
                 note=f"whole run {wall_proxy / wall_direct:.2f}x ({wall_proxy:.1f}s / {wall_direct:.1f}s); "
                      f"proxy forwarding only (the rerun, per utterance) {forward_only:.2f}x"),
        C.result("faults.same_conversations", "conversations through the proxy with the direct run's count and turns",
                 len(same_turns) if same_ok else min(len(same_turns), len(b)), "conv", target=expected, op=">=",
                 detail=detail, note=f"{len(b)}/{expected} conversations, identical texts {identical}/{n_utt}"),
        C.result("faults.failed_turns", "faults stored as failed turns (status error) in the proxied run",
                 failed_turns, "turns", target=0, op="<=", detail=detail),
        C.result("faults.retry_after", "seconds from a 429 (Retry-After: 1) to the same request again, median",
                 C.median(gaps) if gaps else None, "s", detail=detail,
                 note=f"{len(gaps)} 429s; the client's own backoff is {args.backoff:g}s x 2^(attempt-1)"),
        C.result("faults.fail_all_stops", "every call failing: `teamgraph run` exits 2 with one error line",
                 1.0 if stopped else 0.0, "", target=1, op=">=", detail=detail,
                 note=f"exit {proc.returncode}, {len(warnings)} retry warnings, {wall_fail:.1f}s; "
                      f"{(other[-1] if other else '(no line)')[:160]}"),
        C.result("faults.fail_all_resumes", "then forwarding again: the rerun on that store completes conversations",
                 len(resumed.conversations) if all(len(c.utterances) == turns for c in resumed.conversations) else 0,
                 "conv", target=expected_fail, op=">=", detail=detail,
                 note=f"{fail_agents} agents; left after the failure: {left.get('conversations')} conversations, {left.get('utterances')} "
                      f"utterances; run records {[r.get('status') for r in records_after]}"),
    ]
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
