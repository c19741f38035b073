from rag.text import HANS, HANT, clauses, normalize, script_of, sentences, to_script, words


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


def test_sentence_and_clause_spans_keep_closing_quotes():
    text = "他說:“好。”然後走了!最後,一切結束"
    spans = [text[a:b] for a, b in sentences(text)]
    assert spans == ["他說:“好。”", "然後走了!", "最後,一切結束"]
    short = "甲,乙、丙。"
    assert [short[a:b] for a, b in clauses(short)] == ["甲,", "乙、丙。"]  # an enumeration stays whole
