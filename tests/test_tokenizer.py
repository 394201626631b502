import pytest

from runtime.tokenizer import SPECIAL_TOKENS, Tokenizer

ROUND_TRIP = [
    "def f(x):\n\treturn x  # tab\n",
    "line one\r\nline two\r\n",
    "naïve = 'café' + \"日本語\" + '😀'\n",
    "    \n\n   trailing spaces   ",
    "<|mask|> and <|endoftext|> typed in a file stay text",
    "\x00\x01 binary-ish \ufffd",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_exact(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_tokens_are_single_ids(tokenizer):
    ids = {tokenizer.hf.token_to_id(t) for t in SPECIAL_TOKENS}
    assert None not in ids and len(ids) == len(SPECIAL_TOKENS)
    assert tokenizer.mask_id in tokenizer.special_ids
    # a special-token string typed in code must not become the special id
    assert tokenizer.mask_id not in tokenizer.encode("<|mask|>")


def test_vocab_size_in_range(tokenizer):
    assert 8000 <= tokenizer.vocab_size <= 16384


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Tokenizer.from_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        Tokenizer.from_file(bad)
