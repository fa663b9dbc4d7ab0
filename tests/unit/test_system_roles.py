"""System messages rearranged for templates that drop or refuse some of them."""

from __future__ import annotations

from conversion.system_roles import fit_system_messages


def _m(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


CONVERSATION = [
    _m("system", "Be brief."),
    _m("user", "Hi"),
    _m("assistant", "Hello."),
    _m("system", "Answer in French."),
    _m("user", "Why?"),
]


def test_a_template_that_renders_them_anywhere_gets_them_as_they_are() -> None:
    assert fit_system_messages(CONVERSATION, "anywhere") == CONVERSATION


def test_later_system_messages_join_the_leading_one() -> None:
    assert fit_system_messages(CONVERSATION, "leading") == [
        _m("system", "Be brief.\n\nAnswer in French."),
        _m("user", "Hi"),
        _m("assistant", "Hello."),
        _m("user", "Why?"),
    ]
    late_only = [_m("user", "Hi"), _m("system", "Be brief.")]
    assert fit_system_messages(late_only, "leading") == [
        _m("system", "Be brief."),
        _m("user", "Hi"),
    ]


def test_without_system_messages_their_text_opens_the_next_user_message() -> None:
    assert fit_system_messages(CONVERSATION, "none") == [
        _m("user", "Be brief.\n\nHi"),
        _m("assistant", "Hello."),
        _m("user", "Answer in French.\n\nWhy?"),
    ]


def test_without_system_messages_a_trailing_one_closes_the_last_user_message() -> None:
    trailing = [_m("user", "Hi"), _m("assistant", "Hello."), _m("system", "Be brief.")]
    assert fit_system_messages(trailing, "none") == [
        _m("user", "Hi\n\nBe brief."),
        _m("assistant", "Hello."),
    ]
    assert fit_system_messages([_m("system", "Be brief.")], "none") == [_m("user", "Be brief.")]


def test_messages_without_system_text_are_left_alone() -> None:
    plain = [_m("user", "Hi"), _m("assistant", "Hello.")]
    for support in ("anywhere", "leading", "none"):
        assert fit_system_messages(plain, support) == plain  # type: ignore[arg-type]
    assert fit_system_messages([_m("system", ""), *plain], "none") == plain
    assert fit_system_messages([_m("system", ""), *plain], "leading") == plain
