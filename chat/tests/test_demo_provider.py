"""`make run`'s demo assistant (devtools.llm.demo) against the real chat service: a question naming something makes
it look that up with the real tool, and the answer comes from the look-up."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from chat.services import chat_message_post, chat_session_create
from devtools.llm import demo


@pytest.fixture
def demo_llm(llm):
    llm.handler = demo
    return llm


@pytest.mark.parametrize(
    ("question", "arguments"),
    [
        ("Which VMs run in FRA1?", {"site": "FRA1", "type": "vm"}),
        ("Where is fra1-hv001?", {"name": "fra1-hv001"}),
        ("What has 10.2.0.4?", {"ip": "10.2.0.4"}),
    ],
)
def test_a_question_naming_something_is_looked_up_for_real(demo_llm, export, make_user, question, arguments):
    session = chat_session_create(owner=make_user(Role.MEMBER))
    answer = chat_message_post(session=session, content=question)
    [lookup] = answer.grounding["lookups"]
    assert lookup["tool"] == "search_inventory" and lookup["arguments"] == arguments
    tool_result = demo_llm.requests[1].messages[-1]
    assert tool_result["role"] == "tool"  # the second request carried the tool's real result
    if lookup["total"]:
        assert f"I found **{lookup['total']}**" in answer.content and "| Name |" in answer.content
        assert lookup["rows"][0]["name"] in answer.content
    else:
        assert "Nothing in the CMDB matches" in answer.content


def test_a_question_naming_nothing_gets_a_hint_without_a_look_up(demo_llm, export, make_user):
    session = chat_session_create(owner=make_user(Role.MEMBER))
    answer = chat_message_post(session=session, content="hello there")
    assert answer.grounding["lookups"] == [] and "name a site" in answer.content
    assert len(demo_llm.requests) == 1
