"""The Masker at its edges: secrets inside secrets, every encoded form of a secret, what is learnt
from secret-named fields and what is not, personal values that are (not) remembered
(docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from dealerbot.logsetup import Masker


def test_a_secret_inside_a_longer_secret_never_leaves_a_tail() -> None:
    m = Masker(["s3cret", "my-s3cret-long"])
    assert m("a my-s3cret-long b s3cret") == "a ****** b ******"


def test_a_secret_is_masked_in_each_form_it_travels_in() -> None:
    secret = 'p/a"s s+wörd'
    m = Masker([secret])
    forms = [
        secret,
        'p/a\\"s s+wörd',  # JSON, non-ASCII kept
        'p/a\\"s s+w\\u00f6rd',  # JSON, ASCII only
        "p%2Fa%22s%20s%2Bw%C3%B6rd",  # a URL path or query, / encoded too
        "p%2Fa%22s+s%2Bw%C3%B6rd",  # a form body
    ]
    for form in forms:
        assert m(f"[{form}]") == "[******]", form
    assert m("abc") == "abc" and Masker(["abc"])("x abc") == "x ******"  # three characters are enough


def test_secrets_are_learnt_from_every_kind_of_secret_named_field() -> None:
    m = Masker()
    m.learn_secrets('{"name": "x-csrf-token", "value": "tok111111"} <input name="csrf_token" value="tok222222">'
                    ' <meta content="tok333333" name="csrf-token">')
    assert m("body=tok111111&b=tok222222&c=tok333333") == "body=******&b=******&c=******"


def test_short_or_already_masked_values_are_not_learnt() -> None:
    m = Masker()
    for value in ("abc12", "ab******cd", None, ""):
        m.learn_secret(value)
    m.learn_secret("abc123")  # six characters: a secret
    assert m("abc12 ab******cd abc123") == "abc12 ab******cd ******"


def test_secret_named_html_attributes_are_masked_before_or_after_the_name() -> None:
    m = Masker()
    assert m('<input name="csrf_token" value="x1">') == '<input name="csrf_token" value="******">'
    assert m("<meta content='x2' name='csrf-token'>") == "<meta content='******' name='csrf-token'>"


def test_personal_values_masked_longest_first_and_what_is_not_remembered() -> None:
    m = Masker()
    m.add_personal("王芳", "李王芳")
    assert m("李王芳来了") == "李**来了"
    m = Masker()
    m.add_personal(None, "王", "13812345678", "王*芳", "李强")  # a later value counts after a skipped one
    assert m("None 王 王*芳 李强") == "None 王 王*芳 李*"


def test_many_personal_values_stay_masked_as_they_merge() -> None:
    m = Masker()
    names = [f"客户{i:04d}号" for i in range(400)]
    for start in range(0, 400, 50):
        m.add_personal(*names[start:start + 50])
    masked = m(" ".join(names))
    assert not any(n in masked for n in names) and masked.count("客*****") == 400


def test_structured_values_are_masked_inside_and_keep_their_shape() -> None:
    m = Masker(["s3cret"])
    assert m.mask_obj({"a": ["13812345678", ("s3cret", 3)], "n": 3, "s": "s3cret"}) == {
        "a": ["138****5678", ("******", 3)], "n": 3, "s": "******"}
