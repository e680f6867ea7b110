"""Which address a request comes from: X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import pytest

from rest.http import client_address, trusted_networks

PROXIES = trusted_networks(("10.0.0.0/8", "192.168.1.1", "fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer's header is a lie
        ("10.1.2.3", None, "10.1.2.3"),
        ("10.1.2.3", "1.2.3.4", "1.2.3.4"),
        ("10.1.2.3", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client may prepend anything
        ("10.1.2.3", "6.6.6.6, 1.2.3.4, 192.168.1.1", "1.2.3.4"),
        ("10.1.2.3", "10.9.9.9, 192.168.1.1", "10.9.9.9"),  # every hop trusted: the first
        ("10.1.2.3", "garbage, 1.2.3.4", "1.2.3.4"),
        ("10.1.2.3", "1.2.3.4, garbage", "10.1.2.3"),
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        (None, "1.2.3.4", "unknown"),
    ],
)
def test_the_rightmost_untrusted_hop_is_the_client(
    peer: str | None, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("10.1.2.3", "1.2.3.4", ()) == "10.1.2.3"


def test_a_bad_proxy_entry_is_refused() -> None:
    with pytest.raises(ValueError):
        trusted_networks(("not-an-address",))
