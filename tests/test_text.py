import pytest

from rag.text import HANS, HANT, clauses, keywords, normalize, script_of, sentences, to_script, words


def test_script_detection_and_conversion():
    assert script_of("左云縣有多少家活性炭企業?") == HANT
    assert script_of("左云县有多少家活性炭企业?") == HANS
    assert to_script("规模以上企业7家", HANT) == "規模以上企業7家"
    assert to_script("規模以上企業7家", HANS) == "规模以上企业7家"


def test_matching_form_is_script_blind_and_folds_full_width():
    assert normalize("新聞發言人 ＧＤＰ９８％") == normalize("新闻发言人 gdp98%")
    assert words("左雲縣活性炭企業") == words("左云县活性炭企业")


def test_words_drop_function_and_question_words():
    ws = words("左云县有多少家活性炭企业?")
    assert "活性炭" in ws and "企业" in ws
    assert not {"有", "多少", "家", "?"} & set(ws)
    assert words("比2020年增长了多少?") == words("较2020年增长了多少?")  # comparison prepositions


@pytest.mark.parametrize(
    ("question", "kept", "dropped"),
    [
        ("左权县水质达到几类标准?", {"水质", "标准"}, {"几类"}),  # 几 and its measure word
        ("左权县有几座水库?", {"水库"}, {"几座"}),
        ("全县有几项审批事项?", {"审批", "事项"}, {"几项"}),
        ("他排名第几?", {"排名"}, {"第几"}),
        ("这是哪国的国旗?", {"国旗"}, {"哪国"}),
        ("哪吒的师父是谁?", {"哪吒", "师父"}, set()),  # a name
        ("他几乎每天都去哪里?", {"几乎", "每天"}, set()),  # 几乎 is a word, not a question
        ("幾何光學又稱為什麼?", {"几何", "光学"}, set()),  # jieba tags 几何 a pronoun: its tags cannot decide
    ],
)
def test_keywords_leave_out_the_asking_word(question: str, kept: set[str], dropped: set[str]) -> None:
    for ws in (keywords(question), words(question)):
        assert kept <= set(ws) and not dropped & set(ws)


def test_sentence_and_clause_spans_keep_closing_quotes():
    text = "他說:“好。”然後走了!最後,一切結束"
    spans = [text[a:b] for a, b in sentences(text)]
    assert spans == ["他說:“好。”", "然後走了!", "最後,一切結束"]
    short = "甲,乙、丙。"
    assert [short[a:b] for a, b in clauses(short)] == ["甲,", "乙、丙。"]  # an enumeration stays whole
