"""Privacy: one structured log line per answer, no question text at INFO, no secrets anywhere."""

import json
import logging

import pytest

from tests.fake_llm import FakeLLMServer

pytestmark = pytest.mark.slow
SECRET = "sk-test-SECRET-4242"


def test_one_structured_line_per_answer_without_the_question(bot: object, caplog: pytest.LogCaptureFixture) -> None:
    question = "Combien Databricks a-t-il levé en tout ?"
    with caplog.at_level(logging.INFO, logger="chatbot"):
        bot.answer(question)  # type: ignore[attr-defined]
    lines = [r for r in caplog.records if r.name == "chatbot" and r.levelno == logging.INFO]
    assert len(lines) == 1
    record = json.loads(lines[0].getMessage())
    assert record["event"] == "answer" and record["citations"] and "total" in record["timings_ms"]
    assert all(
        "en tout" not in r.getMessage() and "Databricks" not in r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO
    )


def test_secrets_stay_out_of_logs_errors_and_repr(
    settings: object, built: object, e5: object, caplog: pytest.LogCaptureFixture
) -> None:
    from chatbot.core import Chatbot

    with FakeLLMServer() as fake:
        s = settings.model_copy(update={"llm_base_url": fake.url, "llm_model": "error500", "llm_retries": 0})  # type: ignore[attr-defined]
        from pydantic import SecretStr

        s = s.model_copy(update={"llm_api_key": SecretStr(SECRET), "chroma_token": SecretStr(SECRET)})
        assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
        bot = Chatbot(s, embedder=e5)
        with caplog.at_level(logging.DEBUG):
            a = bot.answer("How much did Databricks raise?")
    assert a.notes  # it fell back
    assert SECRET not in json.dumps(a.to_dict())
    assert all(SECRET not in r.getMessage() for r in caplog.records)
