"""The packed key table answers as the dict it replaces would."""

from __future__ import annotations

import random

from cdb_service.lookup.packed import PackedBuilder, PackedKeys, record


def _as_dict(pairs: list[tuple[bytes, int]]) -> dict[bytes, tuple[int, ...]]:
    out: dict[bytes, list[int]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {key: tuple(sorted(values)) for key, values in out.items()}


def test_same_answers_as_a_dict_from_records_and_from_an_ordered_stream() -> None:
    rng = random.Random(3)
    alphabet = "0123456789AB -"
    pairs = [
        ("DEp" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))).encode()
        for _ in range(3000)
    ]
    data = [(key, rng.randrange(5000)) for key in pairs + pairs[:200]]  # some keys twice
    data = list({(k, v) for k, v in data})
    expected = _as_dict(data)
    packed = PackedKeys([record(k, v) for k, v in data])
    builder = PackedBuilder(max(len(k) for k, _ in data))
    for key, value in sorted(data, key=lambda kv: kv[0]):
        builder.add(key, value)
    streamed = builder.build()
    for table in (packed, streamed):
        assert len(table) == len(expected)
        assert list(table) == sorted(expected)
        for key, values in expected.items():
            assert table.get(key) == values
        # a prefix, a longer key, a key longer than any: absent
        assert table.get(b"DE") == expected.get(b"DE", ())
        assert table.get(b"DEp" + b"9" * 40) == ()


def test_a_stream_out_of_byte_order_is_sorted_at_the_end() -> None:
    builder = PackedBuilder(4)
    for key, value in ((b"b", 1), (b"a", 2), (b"ab", 3), (b"a", 0)):
        builder.add(key, value)
    table = builder.build()
    assert list(table) == [b"a", b"ab", b"b"]
    assert table.get(b"a") == (0, 2)
    assert table.get(b"b") == (1,)
    assert PackedKeys().get(b"a") == () and len(PackedKeys()) == 0
