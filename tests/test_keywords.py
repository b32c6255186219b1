from symbolic_moe.preprocess.keywords import filter_keywords, parse_keywords, skills_from_field
from symbolic_moe.types import Question


def test_parse_after_prefix_normalises_and_drops_long_keywords():
    text = "Sure!\nKeywords: Organic Chemistry, *Stoichiometry*, thermodynamics., a very long keyword indeed here"
    assert parse_keywords(text) == ["organic chemistry", "stoichiometry", "thermodynamics"]


def test_parse_uses_last_prefix_and_first_line_and_handles_none():
    assert parse_keywords("Keywords: a, b\nKeywords: law, ethics\nmore text") == ["law", "ethics"]
    assert parse_keywords("history, war") == ["history", "war"]
    assert parse_keywords(None) == [] and parse_keywords("") == []


def test_filter_per_question_keeps_repeated_keywords():
    samples = {"q": [["law", "ethics"], ["law"], ["ethics", "law", "history"], ["art"], []]}
    assert filter_keywords(samples, "per_question", 2) == {"q": ["law", "ethics"]}
    assert filter_keywords(samples, "per_question", 3) == {"q": ["law"]}


def test_filter_global_counts_across_the_split():
    samples = {"q1": [["law"], ["art"]], "q2": [["law"], ["music"]]}
    assert filter_keywords(samples, "global", 2) == {"q1": ["law"], "q2": ["law"]}
    assert filter_keywords(samples, "per_question", 2) == {"q1": [], "q2": []}


def test_skills_from_field():
    qs = [Question(id="a", question="?", answer="A", category="Law"), Question(id="b", question="?", answer="A")]
    assert skills_from_field(qs, "category") == {"a": ["law"], "b": []}


def test_lists_without_the_prefix_are_read_item_by_item():
    text = "The core skills needed are:\n\n* Psychology: Genetics, neuroscience\n* Virology\n1. Political science\n"
    assert parse_keywords(text) == ["genetics", "neuroscience", "virology", "political science"]
    assert parse_keywords("Sure, I'd be happy to provide an answer to your question.") == []
