"""A file's bytes -> its text, strictly, or a refusal that names the byte at fault.

Simplifies: a document is text in one encoding: the one the user names (`index add --encoding`),
else a byte-order mark's, else (HTML) the charset the page declares, else UTF-8. Nothing is
guessed and nothing is replaced: bytes that do not decode are refused, since a lenient decoder
turns any binary file into "text" (random bytes read as Latin-1 were indexed as a French document
and quoted in answers). Control characters are refused too: they are what binary data looks like
in an encoding that decodes every byte (Latin-1, cp1252 mostly).
"""

from __future__ import annotations

import codecs
import re

from chatbot.errors import CorpusError

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)  # UTF-32 LE starts like UTF-16 LE: it is looked for first
# <meta charset="x"> or <meta http-equiv="Content-Type" content="text/html; charset=x">, looked for where
# browsers look (the first 1024 bytes; 4096 here: some pages put long comments first)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
# browsers read these labels as windows-1252 (WHATWG Encoding): so do we, and its five undefined bytes are refused
_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819", "ibm819", "iso-ir-100"}
# C0 and C1 controls besides tab, line feed, vertical tab, form feed and carriage return
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
MAX_CONTROL_SHARE = 0.001  # at most one control character per 1,000: a stray one is tolerated, binary data is not


def declared_charset(data: bytes) -> str:
    """The charset an HTML page declares in its first 4 KB ("" if none)."""
    m = _META_CHARSET.search(data[:4096])
    return m.group(1).decode("ascii").lower() if m else ""


def decode(data: bytes, name: str, encoding: str | None = None, html: bool = False) -> str:
    """The text of a file named `name`, or CorpusError saying which byte is not text and what to do."""
    how = ""
    if encoding:
        codec = _codec(encoding, name)
        if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        how = f" (--encoding {encoding})"
    else:
        codec = next((c for bom, c in _BOMS if data.startswith(bom)), "")
        if not codec and html and (declared := declared_charset(data)):
            label = "cp1252" if declared in _AS_CP1252 else declared
            try:
                codec = codecs.lookup(label).name
                how = f" (the page declares charset {declared})"
            except LookupError:
                how = f" (the page declares charset {declared}, which is unknown here: read as UTF-8)"
        codec = codec or "utf-8"
    shown = {"utf-8-sig": "UTF-8", "utf-8": "UTF-8"}.get(codec, codec)
    try:
        text = data.decode(codec, errors="strict")
    except UnicodeDecodeError as exc:
        byte = data[exc.start : exc.start + 1].hex()
        raise CorpusError(
            f"{name}: not {shown} text{how}: byte 0x{byte} at offset {exc.start} cannot be decoded; "
            f"if the file is text in another encoding, name it with --encoding (e.g. --encoding latin-1)"
        ) from None
    controls = _CONTROL.findall(text)
    if controls and ("\x00" in controls or len(controls) > MAX_CONTROL_SHARE * len(text)):
        first = _CONTROL.search(text)
        assert first is not None
        offset = _byte_offset(text, first.start(), codec, data)
        raise CorpusError(
            f"{name}: looks binary, not text: {len(controls)} control characters, the first (0x{ord(first.group()):02x}) "
            f"at byte offset {offset}{how}"
        )
    return text


def _codec(encoding: str, name: str) -> str:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"{name}: unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from None
    try:
        b"a".decode(info.name)  # bytes-to-bytes codecs (hex, base64, zlib) are refused here
    except LookupError:
        raise CorpusError(f"{name}: {encoding!r} is not a text encoding (e.g. utf-8, latin-1, cp1252, utf-16)") from None
    except ValueError:
        pass  # a text encoding that cannot decode this one byte (utf-16): fine
    return str(info.name)


def _byte_offset(text: str, index: int, codec: str, data: bytes) -> int:
    """Where the character at `index` starts in the file (the BOM counted)."""
    bom = next((len(b) for b, c in _BOMS if c == codec and data.startswith(b)), 0)
    plain = {"utf-8-sig": "utf-8", "utf-16": "utf-16-le" if data.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"}
    plain["utf-32"] = "utf-32-le" if data.startswith(codecs.BOM_UTF32_LE) else "utf-32-be"
    return bom + len(text[:index].encode(plain.get(codec, codec)))
