"""Weighted list headers: what a browser's Accept-Language and a client's Accept-Encoding
ask for, best first, read the same way for both."""

from __future__ import annotations

import pytest

from cdb_service.web.qvalues import accepted


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("", []),
        ("gzip", ["gzip"]),
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", ["fr-CH", "fr", "en", "de", "*"]),
        ("en;q=0.5, de", ["de", "en"]),  # by weight, not by place
        ("br;q=0.8, gzip;q=0.8, zstd", ["zstd", "br", "gzip"]),  # ties keep their order
        ("gzip;q=0, identity", ["identity"]),  # q=0: refused
        ("gzip;q=abc, br", ["br"]),  # a weight that cannot be read: refused too
        ("gzip;q=nan, br;Q=0.1", ["br"]),
        ("gzip;q=2, deflate;q=1e3, zstd;q=inf, br;q=1.000", ["br"]),  # beyond 0-1: refused
        ("gzip;q=0.0001, br;q=0.001, zstd; q = 0.5 ", ["zstd", "br"]),  # three decimals
        (" , ;q=1, de ;level=1; q=0.3", ["de"]),  # empty items, a parameter before q
    ],
)
def test_items_come_best_first_and_refused_ones_not_at_all(header: str, wanted: list[str]
                                                          ) -> None:  # fmt: skip
    assert accepted(header) == wanted
