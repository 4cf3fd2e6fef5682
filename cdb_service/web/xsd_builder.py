"""A JSON Schema (pydantic's, of an answer model) said in XSD 1.0, as `web/xml_form.py`
writes the answer: the translation behind `web/xml_schema.py`, kept apart from which
answers there are.

How each JSON Schema construct becomes XSD 1.0 (what `xml_form` writes, declared):

- an object with declared members: `xs:all` (JSON members have no order) of one
  element per member, required members required, `t="object"`; a member that is not
  declared makes the document invalid (a new member is a new version of the schema);
- an object keyed by a closed list (names per language): one optional element per key;
  other maps (keys that are data) accept any member;
- an array: `i` elements of the item type (with `minItems` / `maxItems`), `t="array"`;
- a string: its text, with the model's `enum` (code lists and literals, named after the
  code list), lengths, pattern, and format (`date`, `date-time`, `uuid`, `uri`);
- integers, numbers and booleans: their XSD types, with `t` required;
- `null`: `t="null"` and no content. A member that may be null accepts both forms;
  XSD 1.0 cannot tie the content to the attribute's value, so the pairing itself
  (no content exactly when `t="null"`) is `xml_form`'s to keep;
- anything the models leave open (`Any`, a union of several types): `cdb:value`.

Problem details keep `problem.xsd` (RFC 9457's namespace); their extension members
(`errors`, ...) are declared here as global elements, which `problem.xsd` checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

from cdb_service.web.xml_form import CDB_NS, PROBLEM_MEMBERS, PROBLEM_NS

XS_NS = "http://www.w3.org/2001/XMLSchema"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_NOT_NCNAME = re.compile(r"[^A-Za-z0-9_.-]")
# Python regex syntax that XSD's regular expressions lack or read differently: a model
# pattern using any of it is left out of the XSD (the JSON answer was checked with it).
_NOT_XSD_REGEX = re.compile(r"\(\?|\\[AZbBxuUN]|[*+?}]\?|\\[0-9]")
_FORMATS = {"date": "xs:date", "date-time": "xs:dateTime", "uuid": "cdb:uuid.text",
            "uri": "xs:anyURI"}  # fmt: skip
_BUILTIN = {"string": "xs:string", "integer": "xs:integer", "number": "xs:double",
            "boolean": "xs:boolean"}  # fmt: skip


def _xs(name: str) -> str:
    return f"{{{XS_NS}}}{name}"


def _documented(parent: Any, text: str | None) -> None:
    if text:
        note = etree.SubElement(etree.SubElement(parent, _xs("annotation")), _xs("documentation"))
        note.text = text


def _ncname(text: str) -> str:
    return _NOT_NCNAME.sub("_", text)


class XsdBuilder:
    """One pass over the JSON Schemas; named types are made once and kept by name."""

    def __init__(self, defs: Mapping[str, Any], version: str) -> None:
        self.defs = defs
        self.schema = etree.Element(
            _xs("schema"),
            nsmap={"xs": XS_NS, "cdb": CDB_NS},
            targetNamespace=CDB_NS,
            elementFormDefault="qualified",
            attributeFormDefault="unqualified",
            version=version,
        )
        self.roots: dict[str, Any] = {}
        self.types: dict[str, Any] = {}  # name -> xs:simpleType / xs:complexType
        self.signatures: dict[str, str] = {}  # a restricted simple type's facets -> name
        self._prelude(version)

    # --- the fixed part --------------------------------------------------------------

    def _prelude(self, version: str) -> None:
        _documented(self.schema, (
            f"The XML form of cdb-service's answers (Annex I 4.3(b)), version {version}, "
            "served at /api/v1/schemas/cdb.xsd and generated from the answer models that "
            "also type the JSON answers in the OpenAPI document. Each answer is its JSON "
            "form mapped member by member: an object member is an element named after its "
            "key (`<m k=\"key\">` when the key is not an XML name), array items are `<i>` "
            "elements, and the attribute `t` names the JSON type of anything that is not a "
            "string (`null` for a null member, with no content). Problem details use RFC "
            "9457's XML form (problem.xsd, imported)."
        ))  # fmt: skip
        etree.SubElement(self.schema, _xs("import"), namespace=PROBLEM_NS,
                         schemaLocation="problem.xsd")  # fmt: skip
        kinds = ("string", "number", "boolean", "null", "object", "array")
        self._enumeration("jsonType", "xs:string", kinds, "The JSON type of a member.")
        for kind in kinds:
            self._enumeration(f"t.{kind}", "xs:string", (kind,), None)
            if kind != "null":
                self._enumeration(f"t.{kind}-or-null", "xs:string", (kind, "null"), None)
        empty = self._type("simpleType", "empty.text", "The content of a null member.")
        etree.SubElement(etree.SubElement(empty, _xs("restriction"), base="xs:string"),
                         _xs("length"), value="0")  # fmt: skip
        uuid = self._type("simpleType", "uuid.text", "A UUID, lower case (RFC 9562).")
        etree.SubElement(
            etree.SubElement(uuid, _xs("restriction"), base="xs:string"),
            _xs("pattern"), value="[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        )  # fmt: skip
        value = self._type("complexType", "value",
                           "Any JSON value, where the model leaves it open: text, or members "
                           "and items (not checked here).")  # fmt: skip
        value.set("mixed", "true")
        etree.SubElement(etree.SubElement(value, _xs("sequence")), _xs("any"),
                         namespace="##targetNamespace", processContents="skip",
                         minOccurs="0", maxOccurs="unbounded")  # fmt: skip
        etree.SubElement(value, _xs("attribute"), name="t", type="cdb:jsonType", default="string")
        etree.SubElement(value, _xs("attribute"), name="k", type="xs:string")
        mapping = self._type("complexType", "map",
                             "An object whose keys are data (counts by name, ...): any "
                             "member.")  # fmt: skip
        etree.SubElement(etree.SubElement(mapping, _xs("sequence")), _xs("any"),
                         namespace="##targetNamespace", processContents="skip",
                         minOccurs="0", maxOccurs="unbounded")  # fmt: skip
        etree.SubElement(mapping, _xs("attribute"), name="t", type="cdb:t.object-or-null",
                         use="required")  # fmt: skip

    def _type(self, kind: str, name: str, doc: str | None) -> Any:
        element = etree.Element(_xs(kind), name=name)
        _documented(element, doc)
        self.types[name] = element
        return element

    def _enumeration(self, name: str, base: str, values: Sequence[Any], doc: str | None) -> str:
        if name not in self.types:
            restriction = etree.SubElement(self._type("simpleType", name, doc),
                                           _xs("restriction"), base=base)  # fmt: skip
            for value in values:
                etree.SubElement(restriction, _xs("enumeration"), value=str(value))
        return f"cdb:{name}"

    # --- roots -----------------------------------------------------------------------

    def root(self, name: str, doc: str, schema: Mapping[str, Any]) -> None:
        """A root element: one answer, whose content `schema` describes."""
        element = etree.Element(_xs("element"), name=name)
        _documented(element, doc)
        element.set("type", self.type_of(schema, name))
        self.roots[name] = element

    def problem_members(self, schema: Mapping[str, Any]) -> None:
        """A problem's extension members as global elements: problem.xsd accepts any
        member of this namespace, and checks one it finds declared (`lax`)."""
        resolved = self._resolve(schema)
        for name, member in resolved.get("properties", {}).items():
            if name in PROBLEM_MEMBERS or name in self.roots:
                continue
            element = etree.Element(_xs("element"), name=name)
            _documented(element, member.get("description") or "A problem's extension member.")
            element.set("type", self.type_of(member, f"problem.{name}"))
            self.roots[name] = element

    # --- types -----------------------------------------------------------------------

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def type_of(self, schema: Mapping[str, Any], context: str) -> str:
        """The QName of the complex type of an element holding `schema`'s value."""
        schema, nullable = _without_null(schema)
        if "$ref" in schema:
            name = _ncname(schema["$ref"].rsplit("/", 1)[-1])
            target = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
            return self._shaped(target, name, nullable)
        return self._shaped(schema, context, nullable)

    def _shaped(self, schema: Mapping[str, Any], name: str, nullable: bool) -> str:
        kind = schema.get("type")
        if "enum" in schema or "const" in schema:
            return self._scalar(schema, name, nullable)
        if kind == "object" and schema.get("properties"):
            return self._object(schema, name, nullable)
        if kind == "object" and _keyed_by_list(schema):
            return self._keyed(schema, name, nullable)
        if kind == "object":
            return "cdb:map"
        if kind == "array":
            return self._array(schema, name, nullable)
        if kind in _BUILTIN:
            return self._scalar(schema, name, nullable)
        if kind == "null":
            return self._null()
        return "cdb:value"  # Any, or a union of several shapes

    def _object(self, schema: Mapping[str, Any], name: str, nullable: bool) -> str:
        full = f"{name}-or-null" if nullable else name
        if full in self.types:
            return f"cdb:{full}"
        complex_type = self._type("complexType", full, schema.get("description"))
        members = etree.SubElement(complex_type, _xs("all"))
        if nullable:
            members.set("minOccurs", "0")  # null: no members at all
        required = set(schema.get("required", ()))
        for key, member in schema["properties"].items():
            if not _NAME.match(key) or key.lower().startswith("xml"):
                raise ValueError(f"{name}.{key}: a declared member must be an XML name")
            element = etree.SubElement(members, _xs("element"), name=key)
            if key not in required:
                element.set("minOccurs", "0")
            _documented(element, _description(member))
            element.set("type", self.type_of(member, f"{name}.{key}"))
        etree.SubElement(complex_type, _xs("attribute"), name="t",
                         type=f"cdb:t.object{'-or-null' if nullable else ''}",
                         use="required")  # fmt: skip
        return f"cdb:{full}"

    def _keyed(self, schema: Mapping[str, Any], name: str, nullable: bool) -> str:
        """A map keyed by a closed list: an object whose members are all optional."""
        value = schema.get("additionalProperties") or {}
        members = {key: value for key in schema["propertyNames"]["enum"]}
        return self._object({**schema, "properties": members, "required": []}, name, nullable)

    def _array(self, schema: Mapping[str, Any], context: str, nullable: bool) -> str:
        item = self.type_of(schema.get("items") or {}, f"{context}.item")
        low, high = schema.get("minItems"), schema.get("maxItems")
        bounds = f".{low or 0}-{high or 'n'}" if low or high is not None else ""
        full = f"{item.removeprefix('cdb:').removeprefix('xs:')}.list{bounds}"
        full += "-or-null" if nullable else ""
        if full not in self.types:
            complex_type = self._type("complexType", full, None)
            most = "unbounded" if high is None else str(high)
            items = etree.SubElement(etree.SubElement(complex_type, _xs("sequence")),
                                     _xs("element"), name="i", type=item,
                                     minOccurs=str(low or 0), maxOccurs=most)  # fmt: skip
            if nullable and low:
                items.set("minOccurs", "0")  # null has no items
            etree.SubElement(complex_type, _xs("attribute"), name="t",
                             type=f"cdb:t.array{'-or-null' if nullable else ''}",
                             use="required")  # fmt: skip
        return f"cdb:{full}"

    def _null(self) -> str:
        if "null" not in self.types:
            complex_type = self._type("complexType", "null", "Always null.")
            etree.SubElement(complex_type, _xs("attribute"), name="t", type="cdb:t.null",
                             use="required")  # fmt: skip
        return "cdb:null"

    def _scalar(self, schema: Mapping[str, Any], context: str, nullable: bool) -> str:
        json_type = _json_type(schema)
        simple = self._simple(schema, context, json_type)
        name = simple.split(":", 1)[1].removesuffix(".text")
        if nullable:
            name += "-or-null"
            if simple != "xs:string":  # "" is not in the type: null's empty content added
                simple = self._or_empty(simple)
        if name not in self.types:
            complex_type = self._type("complexType", name, None)
            extension = etree.SubElement(etree.SubElement(complex_type, _xs("simpleContent")),
                                         _xs("extension"), base=simple)  # fmt: skip
            marked = "number" if json_type in ("integer", "number") else json_type
            attribute = etree.SubElement(extension, _xs("attribute"), name="t",
                                         type=f"cdb:t.{marked}"
                                         f"{'-or-null' if nullable else ''}")  # fmt: skip
            if json_type != "string" or nullable:
                # xml_form marks every non-string; a string has no `t` unless null.
                attribute.set("use", "optional" if json_type == "string" else "required")
        return f"cdb:{name}"

    def _or_empty(self, simple: str) -> str:
        name = f"{simple.split(':', 1)[1].removesuffix('.text')}-or-null.text"
        if name not in self.types:
            union = self._type("simpleType", name, None)
            etree.SubElement(union, _xs("union"), memberTypes=f"{simple} cdb:empty.text")
        return f"cdb:{name}"

    def _simple(self, schema: Mapping[str, Any], context: str, json_type: str) -> str:
        """A simple type for a scalar: a builtin, or a named restriction of one."""
        base = _BUILTIN[json_type]
        if json_type == "string" and schema.get("format") in _FORMATS:
            base = _FORMATS[schema["format"]]
        facets: list[tuple[str, Any]] = []
        values = (
            schema["enum"] if "enum" in schema else [schema["const"]] if "const" in schema else None
        )
        if values is not None:
            facets += [("enumeration", _lexical(v)) for v in values]
        for key, facet in (("minLength", "minLength"), ("maxLength", "maxLength"),
                           ("minimum", "minInclusive"), ("maximum", "maxInclusive"),
                           ("exclusiveMinimum", "minExclusive"),
                           ("exclusiveMaximum", "maxExclusive")):  # fmt: skip
            if key in schema and values is None:
                facets.append((facet, _lexical(schema[key])))
        pattern = schema.get("pattern")
        if pattern and values is None and _xsd_regex(pattern):
            facets.append(("pattern", pattern[1:-1]))
        if not facets:
            return base
        code_list = schema.get("x-code-list")
        signature = json.dumps([base, facets])
        if signature in self.signatures:
            return f"cdb:{self.signatures[signature]}"
        name = _ncname(code_list or _facet_name(base, facets) or context) + ".text"
        if name in self.types:  # the same name for other facets: keep both apart
            name = _ncname(f"{context}.text")
        if name not in self.types:
            doc = code_list and " ".join((
                f"The code list `{code_list}` (GET /api/v1/code-lists/{code_list}).",
                schema.get("x-code-list-source", ""))).strip()  # fmt: skip
            restriction = etree.SubElement(self._type("simpleType", name, doc),
                                           _xs("restriction"), base=base)  # fmt: skip
            for facet, value in facets:
                etree.SubElement(restriction, _xs(facet), value=value)
            self.signatures[signature] = name
        return f"cdb:{name}"

    # --- out -------------------------------------------------------------------------

    def serialise(self) -> bytes:
        for name in sorted(self.roots):
            self.schema.append(self.roots[name])
        for name in sorted(self.types):
            self.schema.append(self.types[name])
        etree.indent(self.schema, space="  ")
        return bytes(etree.tostring(self.schema, xml_declaration=True, encoding="UTF-8")) + b"\n"


def _without_null(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """`schema` without its `null` alternative, and whether it had one."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            kept = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            return {**rest[0], **kept}, len(rest) < len(options)
        return schema, False
    all_of = schema.get("allOf")
    if all_of and len(all_of) == 1:
        return _without_null({**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}})
    return schema, False


def _xsd_regex(pattern: str) -> bool:
    """Whether a model's pattern says the same in XSD: anchored at both ends (XSD's
    patterns always are; JSON Schema's search) and in the syntax both share."""
    anchored = pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")
    return anchored and not _NOT_XSD_REGEX.search(pattern[1:-1]) and "|" not in pattern


def _keyed_by_list(schema: Mapping[str, Any]) -> bool:
    keys: list[Any] = (schema.get("propertyNames") or {}).get("enum") or []
    return bool(keys) and all(_NAME.match(str(k)) for k in keys)


def _json_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind in _BUILTIN:
        return str(kind)
    values: list[Any] = schema.get("enum") or [schema.get("const")]
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) for v in values):
        return "integer"
    return "string"


def _lexical(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _facet_name(base: str, facets: list[tuple[str, Any]]) -> str | None:
    """A readable name for a type that only bounds a length or a number: `string.1-200`."""
    bounds = dict(facets)
    if set(bounds) <= {"minLength", "maxLength"}:
        low, high = bounds.get("minLength", "0"), bounds.get("maxLength", "n")
    elif set(bounds) <= {"minInclusive", "maxInclusive"}:
        low, high = bounds.get("minInclusive", "n"), bounds.get("maxInclusive", "n")
    else:
        return None
    return f"{base.split(':', 1)[1]}.{low}-{high}"


def _description(schema: Mapping[str, Any]) -> str | None:
    text = schema.get("description")
    if text is None:
        for option in schema.get("anyOf") or schema.get("allOf") or ():
            text = text or option.get("description")
    return str(text) if text else None
