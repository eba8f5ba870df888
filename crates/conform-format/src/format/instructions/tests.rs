use rand::{Rng, SeedableRng};
use serde_json::json;

use super::check::follows;
use super::*;

fn parse(v: Value) -> Vec<Instruction> {
    parse_list(&v).unwrap()
}

fn one(id: &str, kwargs: Value) -> Instruction {
    let mut map = kwargs.as_object().cloned().unwrap_or_default();
    map.insert("id".into(), json!(id));
    parse(json!([map])).remove(0)
}

fn automaton(instructions: &[Instruction]) -> Product {
    compile(instructions, None, &Limits::default()).unwrap()
}

/// Positive texts must pass both the automaton and the checker; negative ones must fail the
/// automaton (and, where marked, the checker too: some are only outside our stricter reading).
fn case(id: &str, kwargs: Value, good: &[&str], bad: &[&str]) {
    let instruction = one(id, kwargs);
    let a = automaton(std::slice::from_ref(&instruction));
    for text in good {
        assert!(a.accepts(text.as_bytes()), "{id}: automaton rejects {text:?}");
        assert!(follows(&instruction, text), "{id}: checker rejects {text:?}");
    }
    for text in bad {
        assert!(!a.accepts(text.as_bytes()), "{id}: automaton accepts {text:?}");
    }
}

#[test]
fn every_id_on_hand_written_texts() {
    case("punctuation:no_comma", json!({}), &["Hello there"], &["Hello, there"]);
    case("change_case:english_lowercase", json!({}), &["hello there 42!"], &["Hello there", "привет"]);
    case("change_case:english_capital", json!({}), &["HELLO THERE!"], &["HELLO there"]);
    case(
        "change_case:capital_word_frequency",
        json!({"capital_frequency": 2, "capital_relation": "at least"}),
        &["The NASA and ESA teams."],
        &["The NASA team."],
    );
    case(
        "change_case:capital_word_frequency",
        json!({"capital_frequency": 2, "capital_relation": "less than"}),
        &["The NASA team."],
        &["The NASA and ESA teams."],
    );
    case("keywords:existence", json!({"keywords": ["cat", "Dog"]}), &["A dog and a CAT."], &["A dog only."]);
    case(
        "keywords:frequency",
        json!({"keyword": "sea", "frequency": 2, "relation": "at least"}),
        &["The sea, the SEA."],
        &["The sea."],
    );
    case(
        "keywords:frequency",
        json!({"keyword": "sea", "frequency": 2, "relation": "less than"}),
        &["The sea."],
        &["The sea, the SEA."],
    );
    case(
        "keywords:forbidden_words",
        json!({"forbidden_words": ["run", "bark"]}),
        &["Dogs running and barking."],
        &["Dogs run.", "BARK!"],
    );
    case(
        "keywords:letter_frequency",
        json!({"letter": "z", "let_frequency": 2, "let_relation": "at least"}),
        &["Zig zag"],
        &["Zig"],
    );
    case(
        "keywords:letter_frequency",
        json!({"letter": "z", "let_frequency": 2, "let_relation": "less than"}),
        &["Zig"],
        &["Zig zag"],
    );
    case(
        "length_constraints:number_words",
        json!({"num_words": 3, "relation": "at least"}),
        &["one two three", "one, two; three!"],
        &["one two", "one-"],
    );
    case(
        "length_constraints:number_words",
        json!({"num_words": 3, "relation": "less than"}),
        &["one two", "one two."],
        &["one two three", "a b c"],
    );
    case(
        "length_constraints:number_sentences",
        json!({"num_sentences": 2, "relation": "at least"}),
        &["I came here. Then it rained."],
        &["I came here.", "Mrs. Dr. Smith came."],
    );
    case(
        "length_constraints:number_sentences",
        json!({"num_sentences": 3, "relation": "less than"}),
        &["I came here. Then it rained.", "One sentence", "\"It rained.\""],
        &["A. B. C.", "One. Two. three"],
    );
    case(
        "length_constraints:number_paragraphs",
        json!({"num_paragraphs": 2}),
        &["First part.\n***\nSecond *part*."],
        &["Only one.", "One\n***\n\n***\nTwo", "A\n***\nB\n***\nC"],
    );
    case(
        "length_constraints:nth_paragraph_first_word",
        json!({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "elm"}),
        &["Trees are nice.\n\nElm, the best tree.", "Intro\n\n\"elm trees\" rule."],
        &["Trees are nice.\n\nOak is better.", "Elm.\n\nTrees.", "A\n\nElms grow."],
    );
    case(
        "detectable_content:number_placeholders",
        json!({"num_placeholders": 2}),
        &["Dear [name], at [address]."],
        &["Dear [name]."],
    );
    case(
        "detectable_content:postscript",
        json!({"postscript_marker": "P.S."}),
        &["Hello.\nP.S. Bye."],
        &["Hello. Bye."],
    );
    case(
        "detectable_format:number_bullet_lists",
        json!({"num_bullets": 2}),
        &["Intro:\n* one\n* two\nDone.", "- a\n- b"],
        &["* one", "* one\n* two\n- three", "**bold**\n* one"],
    );
    case(
        "detectable_format:number_highlighted_sections",
        json!({"num_highlights": 2}),
        &["This is *one* and *two*."],
        &["This is *one* only.", "* * *a*"],
    );
    case(
        "detectable_format:multiple_sections",
        json!({"section_spliter": "SECTION", "num_sections": 2}),
        &["SECTION 1\nHello\nSECTION 2\nBye"],
        &["SECTION 1\nHello"],
    );
    case("detectable_format:title", json!({}), &["<<My Poem>>\nRoses."], &["My Poem\nRoses.", "<< >>"]);
    case("detectable_format:json_format", json!({}), &["{\"a\": [1, \"x\"]}"], &["{\"a\": }", "Sure: {}"]);
    case("detectable_format:constrained_response", json!({}), &["My answer is yes."], &["My answer is perhaps."]);
    case(
        "combination:two_responses",
        json!({}),
        &["First answer.\n******\nSecond answer."],
        &["Only one.", "A\n*******\nB", "A\n******\nB\n******\nC"],
    );
    case(
        "combination:repeat_prompt",
        json!({"prompt_to_repeat": "Write a poem."}),
        &["Write a poem. Roses are red."],
        &["A poem: roses."],
    );
    case("startend:end_checker", json!({"end_phrase": "Peace!"}), &["Goodbye. peace!"], &["Peace! Goodbye."]);
    case("startend:quotation", json!({}), &["\"Hello there.\""], &["Hello \"there\"", "\""]);
    case("language:response_language", json!({"language": "ru"}), &["Привет, мир!"], &["Hello мир"]);
    case("language:response_language", json!({"language": "hi"}), &["नमस्ते दुनिया।"], &["नमस्ते world"]);
}

#[test]
fn bad_arguments_name_the_field() {
    let err = |v: Value| parse_list(&v).unwrap_err().to_string();
    assert!(err(json!([{"id": "nope:x"}])).contains("instructions[0].id"));
    assert!(err(json!([{"id": "punctuation:no_comma"}, {"id": "length_constraints:number_words", "num_words": 3}]))
        .contains("instructions[1].relation"));
    assert!(err(json!([{"id": "length_constraints:number_words", "num_words": -1, "relation": "at least"}]))
        .contains("instructions[0].num_words"));
    assert!(err(json!([{"id": "punctuation:no_comma", "extra": 1}])).contains("instructions[0].extra"));
    assert!(err(json!([{"id": "language:response_language", "language": "xx"}])).contains("unsupported language"));
    assert!(err(json!([])).contains("at least one"));
    // IFEval's own files pad kwargs with nulls: accepted.
    parse(json!([{"id": "punctuation:no_comma", "num_words": null}]));
}

#[test]
fn contradictions_are_named() {
    let list = parse(json!([
        {"id": "punctuation:no_comma"},
        {"id": "change_case:english_lowercase"},
        {"id": "change_case:english_capital"}
    ]));
    let e = compile(&list, None, &Limits::default()).err().unwrap();
    let message = e.to_string();
    assert!(matches!(e, FormatError::Contradictory { .. }), "{message}");
    assert!(message.contains("instructions[1]") && message.contains("instructions[2]"), "{message}");
    let list = parse(json!([{"id": "keywords:frequency", "keyword": "a", "frequency": 0, "relation": "less than"}]));
    assert!(matches!(compile(&list, None, &Limits::default()), Err(FormatError::Contradictory { .. })));
}

#[test]
fn combines_with_another_format() {
    let base: Arc<dyn ByteAutomaton> = Arc::new(Automaton::from_regex("[A-Za-z ,.]+", &Limits::default()).unwrap());
    let list = parse(json!([{"id": "punctuation:no_comma"}, {"id": "change_case:english_lowercase"}]));
    let a = compile(&list, Some(base), &Limits::default()).unwrap();
    assert!(a.accepts(b"all good."));
    assert!(!a.accepts(b"all, good."));
    assert!(!a.accepts(b"all good 1"));
}

/// Random texts from fragments that matter to the instructions: whatever an automaton
/// accepts, IFEval's checker must accept too.
#[test]
fn automata_agree_with_the_checker_on_random_texts() {
    let fragments = [
        "word",
        "Word",
        "NASA",
        "I",
        "sea",
        "zig",
        " ",
        " ",
        " ",
        "\n",
        "\n\n",
        ",",
        ".",
        ". ",
        "!",
        "?",
        "*",
        "**",
        "* ",
        "- ",
        "***",
        "******",
        "[x]",
        "<<T>>",
        "P.S.",
        "SECTION 1",
        "\"",
        "é",
        "Mr.",
        "e.g.",
        "elm",
        "'",
        "n't",
        "My answer is yes.",
        "peace!",
    ];
    let instructions = [
        one("punctuation:no_comma", json!({})),
        one("change_case:english_lowercase", json!({})),
        one("change_case:english_capital", json!({})),
        one("change_case:capital_word_frequency", json!({"capital_frequency": 2, "capital_relation": "at least"})),
        one("change_case:capital_word_frequency", json!({"capital_frequency": 2, "capital_relation": "less than"})),
        one("keywords:frequency", json!({"keyword": "sea", "frequency": 2, "relation": "at least"})),
        one("keywords:frequency", json!({"keyword": "sea", "frequency": 2, "relation": "less than"})),
        one("keywords:forbidden_words", json!({"forbidden_words": ["word"]})),
        one("keywords:letter_frequency", json!({"letter": "z", "let_frequency": 2, "let_relation": "less than"})),
        one("length_constraints:number_words", json!({"num_words": 4, "relation": "at least"})),
        one("length_constraints:number_words", json!({"num_words": 4, "relation": "less than"})),
        one("length_constraints:number_sentences", json!({"num_sentences": 2, "relation": "at least"})),
        one("length_constraints:number_sentences", json!({"num_sentences": 2, "relation": "less than"})),
        one("length_constraints:number_paragraphs", json!({"num_paragraphs": 2})),
        one(
            "length_constraints:nth_paragraph_first_word",
            json!({"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "elm"}),
        ),
        one("detectable_content:number_placeholders", json!({"num_placeholders": 1})),
        one("detectable_content:postscript", json!({"postscript_marker": "P.S."})),
        one("detectable_format:number_bullet_lists", json!({"num_bullets": 1})),
        one("detectable_format:number_highlighted_sections", json!({"num_highlights": 1})),
        one("detectable_format:multiple_sections", json!({"section_spliter": "SECTION", "num_sections": 1})),
        one("detectable_format:title", json!({})),
        one("detectable_format:constrained_response", json!({})),
        one("combination:two_responses", json!({})),
        one("startend:end_checker", json!({"end_phrase": "peace!"})),
        one("startend:quotation", json!({})),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for instruction in &instructions {
        let a = automaton(std::slice::from_ref(instruction));
        let mut accepted = 0;
        for _ in 0..4000 {
            let n = rng.gen_range(1..12);
            let text: String = (0..n).map(|_| fragments[rng.gen_range(0..fragments.len())]).collect();
            if a.accepts(text.as_bytes()) {
                accepted += 1;
                // Two responses that happen to be equal are the one property left to the model.
                if matches!(instruction, Instruction::TwoResponses) {
                    continue;
                }
                assert!(follows(instruction, &text), "{instruction:?}: automaton accepts {text:?}, IFEval would not");
            }
        }
        assert!(accepted > 0, "{instruction:?}: no random text accepted; the sample says nothing");
    }
}
