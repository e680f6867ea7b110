"""What the tests share: hub processes (``hub_nodes``), the phone and REST clients
(``clients``), the servers and each test's private database (``servers``), seeds (``bands``,
``calls``), local fakes of the outside services (``gateways``, ``faults``, ``fake_fanout``).
The names most tests need are handed on here."""

from tests.support.clients import Account, Api, Phone, open_box, seal
from tests.support.hub_nodes import ROOT, HubNode, free_port, start_hub_node, two_nodes

__all__ = [
    "ROOT",
    "Account",
    "Api",
    "HubNode",
    "Phone",
    "free_port",
    "open_box",
    "seal",
    "start_hub_node",
    "two_nodes",
]
