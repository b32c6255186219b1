import sqlite3

from symbolic_moe.store import GenerationStore, generation_key
from symbolic_moe.types import ChatRequest, Completion, GenerationSettings


def test_round_trip_and_wal(tmp_path):
    store = GenerationStore(tmp_path / "g.sqlite")
    req = ChatRequest.user("hi", "q1")
    settings = GenerationSettings(max_tokens=8)
    key = generation_key("llama_cpp", "m", req, settings)
    store.put_many(
        "llama_cpp", "m", settings, [(key, req, Completion(text="yo", prompt_tokens=3, completion_tokens=1))]
    )
    got = store.get_many([key, "missing"])
    assert list(got) == [key] and got[key].text == "yo" and got[key].cached
    assert got[key].prompt_tokens == 3
    mode = sqlite3.connect(tmp_path / "g.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_null_output_is_stored_as_no_answer(tmp_path):
    store = GenerationStore(tmp_path / "g.sqlite")
    req = ChatRequest.user("hi", "q1")
    s = GenerationSettings()
    key = generation_key("replay", "m", req, s)
    store.put_many("replay", "m", s, [(key, req, Completion(text=None))])
    assert store.get_many([key])[key].text is None


def test_key_covers_engine_model_messages_settings_sample_and_id():
    req = ChatRequest.user("hi", "q1")
    s = GenerationSettings()
    base = generation_key("e", "m", req, s)
    variants = [
        generation_key("e2", "m", req, s),
        generation_key("e", "m2", req, s),
        generation_key("e", "m", ChatRequest.user("hi!", "q1"), s),
        generation_key("e", "m", ChatRequest.user("hi", "q2"), s),
        generation_key("e", "m", ChatRequest.user("hi", "q1", sample=1), s),
        generation_key("e", "m", req, GenerationSettings(temperature=0.0)),
        generation_key("e", "m", req, GenerationSettings(seed=1)),
    ]
    assert base == generation_key("e", "m", ChatRequest.user("hi", "q1"), GenerationSettings())
    assert len({base, *variants}) == len(variants) + 1
