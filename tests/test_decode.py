"""Bytes -> text, strictly (index/decode.py): the encoding named, a BOM's, the page's charset or
UTF-8; a refusal names the byte at fault."""

from __future__ import annotations

import pytest

from chatbot.errors import CorpusError
from index.decode import declared_charset, decode

TEXT = "Les éléphants de Pérouse — « trois » en 2024.\n"


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_byte_order_mark_names_the_encoding(codec: str) -> None:
    assert decode(TEXT.encode(codec), "f.txt") == TEXT


def test_utf8_by_default_and_the_offset_of_a_bad_byte() -> None:
    data = TEXT.encode("utf-8")
    assert decode(data, "f.txt") == TEXT
    bad = data[:3] + b"\xff" + data[3:]
    with pytest.raises(CorpusError, match=r"f\.txt: not UTF-8 text: byte 0xff at offset 3 cannot be decoded; .*--encoding"):
        decode(bad, "f.txt")
    latin = TEXT.replace("—", "-")
    assert decode(latin.encode("latin-1"), "f.txt", encoding="latin-1") == latin


def test_an_html_page_is_read_in_the_charset_it_declares() -> None:
    page = f'<html><head><meta charset="ISO-8859-1"></head><body><p>{TEXT}</p></body></html>'
    assert declared_charset(page.encode("cp1252")) == "iso-8859-1"
    assert TEXT in decode(page.encode("cp1252"), "p.html", html=True)
    # as browsers do, ISO-8859-1 is windows-1252, whose undefined bytes are refused
    with pytest.raises(CorpusError, match=r"not cp1252 text \(the page declares charset iso-8859-1\): byte 0x81 at offset \d+"):
        decode(page.encode("cp1252") + b"\x81", "p.html", html=True)
    http_equiv = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>Nîmes</p>'
    assert "Nîmes" in decode(http_equiv.encode("cp1252"), "p.html", html=True)
    assert "Nîmes" in decode('<meta charset="x-unknown"><p>Nîmes</p>'.encode(), "p.html", html=True)  # unknown: UTF-8
    assert "Nîmes" in decode(http_equiv.encode("utf-8"), "p.html", html=True, encoding="utf-8")  # the user knows better


def test_binary_in_a_lenient_encoding_is_refused() -> None:
    noise = bytes(range(1, 256)) * 40
    with pytest.raises(CorpusError, match=r"looks binary, not text: \d+ control characters, the first \(0x01\) at byte offset 0"):
        decode(noise, "n.txt", encoding="latin-1")
    with pytest.raises(CorpusError, match=r"the first \(0x00\) at byte offset 6"):
        decode(b"\xff\xfe" + "ab\x00c".encode("utf-16-le"), "n.txt")  # a NUL, even alone; the offset counts the BOM
    assert decode(b"one stray \x1b escape in a long enough text" + b" and more text" * 100, "ok.txt")  # under one in 1,000


def test_encodings_that_are_no_text_encodings() -> None:
    with pytest.raises(CorpusError, match="unknown encoding 'klingon'"):
        decode(b"x", "f.txt", encoding="klingon")
    with pytest.raises(CorpusError, match="not a text encoding"):
        decode(b"78", "f.txt", encoding="hex")
