from symbolic_moe.preprocess.aggregator_choice import build_benchmark, pick
from symbolic_moe.types import Question

QS = [
    Question(id=f"q{i}", question=f"Q{i}? The options are: (A) x (B) y.", answer="A", choices=["A", "B"])
    for i in range(4)
]


def _outputs(pattern: dict[str, str]) -> tuple[dict, dict]:
    """pattern: model -> string of A/B answers for q0..q3."""
    outputs = {m: {f"q{i}": f"Reasoning. The answer is ({a})" for i, a in enumerate(ans)} for m, ans in pattern.items()}
    correct = {m: {f"q{i}": a == "A" for i, a in enumerate(ans)} for m, ans in pattern.items()}
    return outputs, correct


def test_usable_questions_need_one_correct_and_two_incorrect():
    outputs, correct = _outputs({"m1": "AABB", "m2": "BABA", "m3": "BBBA", "m4": "AAAA"})
    # q0: right m1,m4 wrong m2,m3 -> usable; q1: right m1,m2,m4 wrong m3 -> not; q2: right m4 wrong m1,m3,m2... m2=B
    items = build_benchmark(QS, outputs, correct, seed=0)
    usable = {i.question_id for i in items}
    assert usable == {"q0", "q2"}
    for item in items:
        assert len(item.responses) == 3
        right = [correct[m][item.question_id] for m in item.sources]
        assert right.count(True) == 1 and right[item.correct_position]


def test_benchmark_is_seeded():
    outputs, correct = _outputs({"m1": "AAAA", "m2": "BBBB", "m3": "BBBB", "m4": "BBBB", "m5": "AAAA"})
    a = build_benchmark(QS, outputs, correct, seed=1)
    assert a == build_benchmark(QS, outputs, correct, seed=1)
    positions = {i.correct_position for s in range(10) for i in build_benchmark(QS, outputs, correct, seed=s)}
    assert positions == {0, 1, 2}  # shuffled


def test_pick_breaks_ties_by_validation_accuracy():
    assert pick({"a": 0.5, "b": 0.5, "c": 0.4}, {"a": 0.3, "b": 0.6, "c": 0.9}) == "b"
    assert pick({"a": 0.6, "b": 0.5}, {"a": 0.1, "b": 0.9}) == "a"
