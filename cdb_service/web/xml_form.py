"""The XML form of a JSON answer (Annex I 4.3(b)), and back: one mapping for every answer.

Every answer is built as JSON-shaped data first; its XML form is that data, mapped
member by member, so that both forms carry the same data by construction (and
`from_xml` proves it in the tests):

- an object member is an element named after its key in the CDB namespace (a key that
  is not an XML name becomes `<m k="key">`); array items are `<i>` elements (the
  convention of RFC 7807's appendix);
- a string is the element's text; other JSON types say so in the `t` attribute
  (`number`, `boolean`, `null`, `object`, `array`), so that `""`, `[]`, `{}` and
  `null` stay apart;
- problem details use RFC 9457's XML form: `<problem>` in the urn:ietf:rfc:7807
  namespace with `type`, `title`, `status`, `detail` there, extension members in ours.

Built with lxml, which escapes. Stored text is printable (`kernel/text.py`), but a
character XML 1.0 cannot carry is replaced rather than failing the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree

CDB_NS = "https://cdb.judex.europa.eu/xml/v1"
PROBLEM_NS = "urn:ietf:rfc:7807"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Everything XML 1.0 forbids (§2.2 Char): C0 controls but tab, LF, CR; surrogates; FFFE/FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance")


def _q(name: str, namespace: str = CDB_NS) -> str:
    return f"{{{namespace}}}{name}"


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _fill(element: Any, value: Any) -> None:
    if isinstance(value, dict):
        element.set("t", "object")
        for key, member in value.items():
            key = str(key)
            if _NAME.match(key) and not key.lower().startswith("xml"):
                child = etree.SubElement(element, _q(key))
            else:
                child = etree.SubElement(element, _q("m"), k=_text(key))
            _fill(child, member)
    elif isinstance(value, list | tuple):
        element.set("t", "array")
        for item in value:
            _fill(etree.SubElement(element, _q("i")), item)
    elif value is None:
        element.set("t", "null")
    elif isinstance(value, bool):
        element.set("t", "boolean")
        element.text = "true" if value else "false"
    elif isinstance(value, int | float):
        element.set("t", "number")
        element.text = json.dumps(value)
    else:
        element.text = _text(str(value))


def _serialise(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def to_xml(root_name: str, data: Any) -> bytes:
    """`data` (JSON-shaped) as the document whose root element is `root_name`."""
    root = etree.Element(_q(root_name), nsmap={None: CDB_NS})
    _fill(root, data)
    return _serialise(root)


def problem_to_xml(problem: dict[str, Any]) -> bytes:
    """RFC 9457 §A (the RFC 7807 XML form): standard members first, extensions after."""
    root = etree.Element(_q("problem", PROBLEM_NS), nsmap={None: PROBLEM_NS, "cdb": CDB_NS})
    for name in PROBLEM_MEMBERS:
        if problem.get(name) is not None:
            etree.SubElement(root, _q(name, PROBLEM_NS)).text = _text(str(problem[name]))
    for key, value in problem.items():
        if key not in PROBLEM_MEMBERS:
            _fill(etree.SubElement(root, _q(key)), value)
    return _serialise(root)


# --- back to JSON (clients and the tests' round trip) ---------------------------------


def _value(element: Any) -> Any:
    kind = element.get("t", "string")
    if kind == "object":
        return {
            child.get("k") if etree.QName(child).localname == "m" and child.get("k") is not None
            else etree.QName(child).localname: _value(child)
            for child in element
        }  # fmt: skip
    if kind == "array":
        return [_value(child) for child in element]
    if kind == "null":
        return None
    if kind == "boolean":
        return element.text == "true"
    if kind == "number":
        return json.loads(element.text)
    return element.text or ""


def from_xml(document: bytes) -> Any:
    """An XML answer (ours or a problem) read back into its JSON shape."""
    root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False))
    if etree.QName(root).namespace != PROBLEM_NS:
        return _value(root)
    out: dict[str, Any] = {}
    for child in root:
        name = etree.QName(child)
        if name.namespace == PROBLEM_NS:
            out[name.localname] = int(child.text) if name.localname == "status" else child.text
        else:
            out[name.localname] = _value(child)
    return out
