"""The Python package (crates/conform-py, `make python`) against the Rust engine it wraps.

For a JSON Schema (string, integer, enum and nested object), a regex, a choice list and a GBNF
grammar, on the Llama 3 tokenizer: a valid instance is tokenized greedily from the package's
own masks (at each step the longest allowed token that is a prefix of what is left), then
`crates/conform-format/examples/dump_masks.rs` replays the same tokens in Rust, and every
step's mask must be bit for bit the same: `fill_bitmask()`, `allowed_tokens()`, the count,
whether the output may end. Once with no token budget, once with the tightest budget the
instance fits in. Also: errors (bad schema, regex, grammar; a refused token), the end of
generation (EOS allowed exactly where the output may end), bitmask buffers, a vocabulary
given as bytes, the compiler's cache (the same format compiled again is the same grammar).

Run: `make python && python3 tests/python_package_test.py` (stdlib only; when this Python
cannot import conform_format, the test re-runs itself in the venv `make python` installs to).
"""

import array
import json
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(os.path.expanduser("~"), ".cache", "conform", "py-venv", "bin", "python")

try:
    import conform_format as cf
except ImportError:
    if os.path.exists(VENV_PYTHON) and not os.environ.get("CONFORM_PY_REEXEC"):
        os.environ["CONFORM_PY_REEXEC"] = "1"
        os.execv(VENV_PYTHON, [VENV_PYTHON] + sys.argv)
    sys.exit("conform_format is not installed: run `make python` first")

DATA = os.environ.get("CONFORM_DATA") or os.path.join(ROOT, "..", "shared", "data")
LLAMA3 = os.path.join(DATA, "tokenizers", "llama3-tokenizer.json")

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role", "address"],
    "additionalProperties": False,
}
INSTANCE = {"name": "Ada Lovelace, Countess", "age": 36, "role": "editor",
            "address": {"city": "London", "zip": "12345"}}
REGEX = r"[A-Z]{2}-[0-9]{3,5}( \((draft|final)\))?"
CHOICES = ["apple", "banana split", "cherry pie", "banana"]
GBNF = r'''root ::= expr
expr ::= term (("+" | "-") term)*
term ::= [0-9]+ | "(" expr ")"
'''

# (name, kind, spec as dump_masks takes it, compile, target text); whitespace other than compact: WHITESPACE
CASES = [
    ("json_schema", "json_schema", json.dumps(SCHEMA), lambda c: c.json_schema(SCHEMA),
     json.dumps(INSTANCE, separators=(",", ":"))),
    ("json_schema_natural", "json_schema", json.dumps(SCHEMA), lambda c: c.json_schema(json.dumps(SCHEMA), whitespace="natural"),
     json.dumps(INSTANCE, indent=2)),
    ("regex", "regex", REGEX, lambda c: c.regex(REGEX), "QX-40917 (final)"),
    ("choice", "choice", json.dumps(CHOICES), lambda c: c.choice(CHOICES), "banana split"),
    ("grammar", "grammar", GBNF, lambda c: c.grammar(GBNF), "(12+345)-(6-(78))+9"),
]
WHITESPACE = {"json_schema_natural": "natural"}

_state = {}


def setUpModule():
    if not os.path.exists(LLAMA3):
        raise unittest.SkipTest(f"{LLAMA3} not found (set CONFORM_DATA)")
    tok = cf.Tokenizer.from_tokenizer_json(LLAMA3)
    _state["tok"] = tok
    _state["compiler"] = cf.Compiler(tok)
    _state["token_bytes"] = [tok.token_bytes(i) for i in range(tok.vocab_size)]
    by_bytes = {}
    for i, b in enumerate(_state["token_bytes"]):
        if b:
            by_bytes.setdefault(b, []).append(i)
    _state["by_bytes"] = by_bytes
    _state["max_len"] = max(len(b) for b in by_bytes)
    # The reference: built once, with the Makefile's flags, in the main build's target dir.
    env = dict(os.environ)
    env.setdefault("RUSTFLAGS", "-C target-cpu=native")
    out = subprocess.run(
        [os.environ.get("CARGO", "cargo"), "build", "--release", "--quiet", "-p", "conform-format",
         "--example", "dump_masks", "--message-format=json-render-diagnostics"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    exe = None
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "dump_masks" and msg.get("executable"):
            exe = msg["executable"]
    assert exe, "cargo did not report the dump_masks executable"
    _state["dump_masks"] = exe
    _state["compared"] = {}


def tearDownModule():
    compared = _state.get("compared", {})
    if compared:
        total = sum(compared.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(compared.items()))
        print(f"\n{total} masks compared with the Rust engine, bit for bit ({detail})", file=sys.stderr)


def bit(mask, t):
    return (mask[t >> 3] >> (t & 7)) & 1


def bitmask_of(ids, n_bytes):
    out = bytearray(n_bytes)
    for t in ids:
        out[t >> 3] |= 1 << (t & 7)
    return out


def greedy_walk(grammar, target, budget=None):
    """Tokenizes `target` greedily from the masks (longest allowed token that is a prefix of what
    is left), then EOS. Returns the tokens and, per step (once more after the EOS), the package's
    (count from fill_bitmask, bitmask bytes, allowed_tokens(), is_accepting())."""
    tok = _state["tok"]
    m = cf.Matcher(grammar)
    rest = target.encode()
    tokens, steps = [], []
    n_bytes = tok.bitmask_words * 4
    while True:
        remaining = None if budget is None else budget - len(tokens)
        buf = bytearray(n_bytes)
        count = m.fill_bitmask(buf, remaining)
        allowed = m.allowed_tokens(remaining)
        steps.append((count, bytes(buf), allowed, m.is_accepting()))
        if tokens and tokens[-1] in tok.eos_tokens:
            return tokens, steps
        if not rest:
            assert m.is_accepting(), f"the whole target {target!r} is in, yet the output cannot end"
            eos = tok.eos_tokens[-1]
            assert bit(buf, eos), "EOS not allowed where the output may end"
            m.accept(eos)
            tokens.append(eos)
            assert m.is_finished()
            continue
        pick = None
        for n in range(min(len(rest), _state["max_len"]), 0, -1):
            for t in _state["by_bytes"].get(rest[:n], ()):
                if bit(buf, t):
                    pick = t
                    break
            if pick is not None:
                break
        assert pick is not None, f"no allowed token starts {rest[:20]!r} (step {len(tokens)})"
        m.accept(pick)
        tokens.append(pick)
        rest = rest[len(_state["token_bytes"][pick]):]


def feed(m, text):
    """Accepts `text` into `m`, greedily tokenized (longest allowed token first)."""
    rest = text.encode()
    while rest:
        allowed = set(m.allowed_tokens())
        pick = next(t for n in range(min(len(rest), _state["max_len"]), 0, -1)
                    for t in _state["by_bytes"].get(rest[:n], ()) if t in allowed)
        m.accept(pick)
        rest = rest[len(_state["token_bytes"][pick]):]


def dump_masks(kind, spec, tokens, whitespace=None, budget=None):
    args = [_state["dump_masks"], LLAMA3, kind, spec, ",".join(map(str, tokens))]
    if whitespace:
        args += ["--whitespace", whitespace]
    if budget is not None:
        args += ["--max-tokens", str(budget)]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


class MasksEqualTheEngine(unittest.TestCase):
    def compare(self, name, kind, spec, compile_, target, budget_slack=None):
        grammar = compile_(_state["compiler"])
        self.assertTrue(grammar.accepts(target), f"{name}: the format does not accept {target!r}")
        tokens, _ = greedy_walk(grammar, target)
        budget = None if budget_slack is None else len(tokens) + budget_slack
        if budget is not None:
            tokens_b, steps = greedy_walk(grammar, target, budget)
            self.assertEqual(tokens_b, tokens, f"{name}: the tight budget changed the greedy path")
        else:
            _, steps = greedy_walk(grammar, target)
        ref = dump_masks(kind, spec, tokens, WHITESPACE.get(name), budget)
        self.assertEqual(len(ref), len(steps), f"{name}: step count")
        self.assertEqual(len(steps), len(tokens) + 1)
        n_bytes = _state["tok"].bitmask_words * 4
        for i, ((count, mask, allowed, accepting), r) in enumerate(zip(steps, ref)):
            where = f"{name} (budget {budget}) step {i} after {_state['token_bytes'][tokens[i - 1]]!r}" if i else f"{name} step 0"
            self.assertEqual(count, len(allowed), f"{where}: fill_bitmask's count vs allowed_tokens()")
            self.assertEqual(mask, bytes(bitmask_of(allowed, n_bytes)), f"{where}: fill_bitmask vs allowed_tokens()")
            self.assertEqual(allowed, sorted(allowed))
            self.assertEqual(count, r["count"], f"{where}: count")
            self.assertEqual(allowed[:16], r["first_ids"], f"{where}: first allowed ids")
            self.assertEqual(mask.hex(), r["mask_hex"], f"{where}: bitmask")
            self.assertEqual(accepting, r["accepting"], f"{where}: accepting")
        # After EOS nothing at all; the last text token left the output complete.
        self.assertEqual(steps[-1][0], 0)
        self.assertTrue(steps[-2][3])
        self.assertGreater(len(tokens), 2)
        key = name if budget is None else f"{name}+budget"
        _state["compared"][key] = len(steps)

    def test_json_schema(self):
        self.compare(*CASES[0])

    def test_json_schema_tight_budget(self):
        # The EOS is one of the tokens: every step's budget is exactly what the rest needs.
        self.compare(*CASES[0], budget_slack=0)

    def test_json_schema_natural_whitespace(self):
        self.compare(*CASES[1])

    def test_regex(self):
        self.compare(*CASES[2])

    def test_regex_budget(self):
        self.compare(*CASES[2], budget_slack=1)

    def test_choice(self):
        self.compare(*CASES[3])

    def test_grammar(self):
        self.compare(*CASES[4])


class Behaviour(unittest.TestCase):
    def setUp(self):
        self.tok = _state["tok"]
        self.c = _state["compiler"]

    def test_bad_schema_names_the_problem(self):
        with self.assertRaises(ValueError) as e:
            self.c.json_schema({"type": "object", "properties": {"a": {"type": "strin"}}})
        self.assertIn("#/properties/a", str(e.exception))
        self.assertIn("strin", str(e.exception))
        with self.assertRaises(ValueError) as e:
            self.c.json_schema('{"type": ')
        self.assertIn("not valid JSON", str(e.exception))
        with self.assertRaises(ValueError) as e:
            self.c.json_schema({"type": "string"}, whitespace="lots")
        with self.assertRaises(ValueError) as e:
            self.c.regex("(unclosed")
        self.assertIn("invalid regex", str(e.exception))
        with self.assertRaises(ValueError) as e:
            self.c.grammar("root ::= missing")
        self.assertIn("missing", str(e.exception))
        with self.assertRaises(ValueError):
            self.c.choice([])

    def test_limits_are_enforced(self):
        small = cf.Compiler(self.tok, dfa_size_bytes=1 << 12)
        with self.assertRaises(ValueError) as e:
            small.regex("(a|b)*a(a|b){16}")
        self.assertIn("too complex", str(e.exception))

    def test_disallowed_token_raises_and_changes_nothing(self):
        m = cf.Matcher(self.c.json_schema(SCHEMA))
        before = m.allowed_tokens()
        the = self.tok.token_bytes(279)
        self.assertEqual(the, b" the")
        with self.assertRaises(ValueError) as e:
            m.accept(279)
        self.assertIn("not allowed", str(e.exception))
        with self.assertRaises(ValueError):
            m.accept(self.tok.eos_tokens[0])  # the output cannot end yet
        with self.assertRaises(ValueError):
            m.accept(128000)  # <|begin_of_text|>: a control token
        with self.assertRaises(ValueError):
            m.accept(10 ** 6)  # out of the vocabulary
        self.assertEqual(m.allowed_tokens(), before)
        self.assertEqual(m.forced_bytes(), b'{"name":"')

    def test_finished_state_allows_eos(self):
        m = cf.Matcher(self.c.choice(["yes", "no"]))
        self.assertFalse(m.is_accepting())
        yes = _state["by_bytes"][b"yes"][0]
        m.accept(yes)
        self.assertTrue(m.is_accepting())
        self.assertTrue(m.is_finished())
        self.assertEqual(m.allowed_tokens(), self.tok.eos_tokens)
        buf = bytearray(self.tok.bitmask_words * 4)
        self.assertEqual(m.fill_bitmask(buf), 2)
        self.assertEqual(buf, bitmask_of(self.tok.eos_tokens, len(buf)))
        m.accept(self.tok.eos_tokens[0])
        self.assertTrue(m.is_finished())
        self.assertEqual(m.allowed_tokens(), [])
        self.assertEqual(m.fill_bitmask(buf), 0)
        self.assertEqual(buf, bytearray(len(buf)))
        with self.assertRaises(ValueError):
            m.accept(yes)
        m.reset()
        self.assertFalse(m.is_accepting())
        self.assertIn(yes, m.allowed_tokens())

    def test_accepting_but_not_finished(self):
        # "banana" may end or go on to "banana split": EOS and " split" are both allowed.
        m = cf.Matcher(self.c.choice(CHOICES))
        feed(m, "banana")
        self.assertTrue(m.is_accepting())
        self.assertFalse(m.is_finished())
        allowed = m.allowed_tokens()
        self.assertTrue(set(self.tok.eos_tokens) <= set(allowed))
        self.assertIn(_state["by_bytes"][b" split"][0], allowed)
        self.assertEqual(m.forced_bytes(), b"")
        # A budget of one token: only what leaves the output complete (" split" does).
        split = _state["by_bytes"][b" split"][0]
        self.assertEqual(m.allowed_tokens(remaining_tokens=1), sorted([split] + self.tok.eos_tokens))
        self.assertEqual(m.allowed_tokens(remaining_tokens=0), [])

    def test_copy_is_independent(self):
        m = cf.Matcher(self.c.regex("ab(c|d)"))
        feed(m, "ab")
        n = m.copy()
        feed(n, "c")
        self.assertFalse(m.is_accepting())
        self.assertTrue(n.is_accepting())

    def test_bitmask_buffers(self):
        m = cf.Matcher(self.c.regex("[0-9]+"))
        words = self.tok.bitmask_words
        self.assertEqual(words, (self.tok.vocab_size + 31) // 32)
        ref = bytearray(words * 4)
        n = m.fill_bitmask(ref)
        # An int32 array (numpy's int32 rows work the same way), longer than the vocabulary:
        # the padding is zeroed.
        ints = array.array("i", [-1] * (words + 3))
        self.assertEqual(m.fill_bitmask(ints), n)
        self.assertEqual(ints.tobytes()[: words * 4], bytes(ref))
        self.assertEqual(list(ints[words:]), [0, 0, 0])
        # A memoryview slice of a bigger (batch) buffer.
        batch = bytearray(words * 4 * 2)
        self.assertEqual(m.fill_bitmask(memoryview(batch)[words * 4:]), n)
        self.assertEqual(batch[words * 4:], ref)
        self.assertEqual(batch[: words * 4], bytearray(words * 4))
        with self.assertRaises(TypeError):
            m.fill_bitmask(bytes(words * 4))  # read-only
        with self.assertRaises(ValueError):
            m.fill_bitmask(bytearray(words * 4 - 4))  # too small
        logits = m.mask_logits([0.5] * (self.tok.vocab_size + 2))
        allowed = m.allowed_tokens()
        self.assertEqual([i for i, x in enumerate(logits) if x != float("-inf")], allowed)
        self.assertEqual(len(allowed), n)

    def test_tokenizer_from_token_bytes(self):
        toks = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b"12", None, None]
        eos = len(toks) - 1
        t = cf.Tokenizer.from_token_bytes(toks, [eos])
        self.assertEqual(t.vocab_size, 261)
        self.assertEqual(t.eos_tokens, [eos])
        self.assertEqual(t.token_bytes(256), b"ab")
        self.assertEqual(t.token_bytes(eos), b"")
        g = cf.Compiler(t).regex("ab[c0-9]")
        m = cf.Matcher(g)
        self.assertEqual(m.allowed_tokens(), [ord("a"), 256, 257])
        m.accept(256)
        self.assertEqual(m.allowed_tokens(), [ord(c) for c in "0123456789c"])
        m.accept(ord("7"))
        self.assertEqual(m.allowed_tokens(), [eos])
        with self.assertRaises(TypeError):
            cf.Tokenizer.from_token_bytes(["a"], [])  # str, not bytes

    def test_compiler_keeps_what_it_compiled(self):
        # The same format compiled again is the same grammar (equal, same hash); a schema given
        # as a dict or as its JSON text is the same format.
        c = cf.Compiler(self.tok)
        first = c.regex("[a-z]+[0-9]")
        self.assertEqual(c.regex("[a-z]+[0-9]"), first)
        self.assertEqual(hash(c.regex("[a-z]+[0-9]")), hash(first))
        self.assertNotEqual(c.regex("[a-z]+[0-9]?"), first)
        self.assertEqual(c.json_schema(SCHEMA), c.json_schema(json.dumps(SCHEMA)))
        self.assertNotEqual(c.json_schema(SCHEMA), c.json_schema(SCHEMA, whitespace="natural"))
        self.assertEqual(c.choice(CHOICES), c.choice(list(CHOICES)))
        self.assertEqual(c.grammar(GBNF), c.grammar(GBNF))
        self.assertEqual(c.any_json(), c.any_json())
        self.assertNotEqual(c.any_json(), c.any_json(object_only=True))
        self.assertEqual(len({c.regex("x"), c.regex("x"), c.regex("y")}), 2)
        # Another compiler compiles its own; a cached grammar's matchers start afresh.
        self.assertNotEqual(cf.Compiler(self.tok).regex("[a-z]+[0-9]"), first)
        self.assertNotEqual(first, "not a grammar")
        m = cf.Matcher(first)
        feed(m, "ab7")
        self.assertTrue(m.is_accepting())
        self.assertFalse(cf.Matcher(c.regex("[a-z]+[0-9]")).is_accepting())

    def test_any_json(self):
        g = self.c.any_json()
        for ok in ["1", "[1,[2,{\"x\":null}]]", "\"a\"", "{}", "true"]:
            self.assertTrue(g.accepts(ok), ok)
        for bad in ["{", "[1,]", "nul", ""]:
            self.assertFalse(g.accepts(bad), bad)
        o = self.c.any_json(object_only=True)
        self.assertTrue(o.accepts('{"a":[1]}'))
        self.assertFalse(o.accepts("[1]"))
        n = self.c.any_json(whitespace="natural")
        self.assertTrue(n.accepts('{"a": [1, 2]}'))
        self.assertFalse(g.accepts('{"a": [1, 2]}'))
        with self.assertRaises(ValueError):
            self.c.any_json(whitespace="lots")

    def test_tokenizer_json_text(self):
        with open(LLAMA3, encoding="utf-8") as f:
            t = cf.Tokenizer.from_tokenizer_json_str(f.read())
        self.assertEqual(t.vocab_size, self.tok.vocab_size)
        self.assertEqual(t.eos_tokens, [128001, 128009])
        with self.assertRaises(ValueError):
            cf.Tokenizer.from_tokenizer_json_str("{}")
        with self.assertRaises(ValueError):
            cf.Tokenizer.from_tokenizer_json("/nonexistent/tokenizer.json")


if __name__ == "__main__":
    unittest.main(verbosity=2)
