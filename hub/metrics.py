"""Prometheus metrics for one hub process, in the app's own registry (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class HubMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.connections = Gauge("hub_connections", "Open Socket.IO connections", registry=r)
        self.connects = Counter(
            "hub_connects", "Connection attempts by outcome", ["outcome"], registry=r
        )
        self.events = Counter(
            "hub_socket_events", "Socket events handled, by name", ["event"], registry=r
        )
        self.errors = Counter(
            "hub_socket_errors",
            "Socket events answered with an error",
            ["event", "code"],
            registry=r,
        )
        self.messages = Counter("hub_messages", "Messages stored, by kind", ["kind"], registry=r)
        self.ack_seconds = Histogram(
            "hub_ack_seconds",
            "Time from event received to ack",
            ["event"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "hub_http_requests",
            "REST requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.deliveries = Counter(
            "hub_deliveries", "Events delivered, by path", ["path"], registry=r
        )
        self.attachment_bytes_reserved = Counter(
            "hub_attachment_bytes_reserved", "Bytes of attachment uploads reserved", registry=r
        )
        self.attachments_swept = Counter(
            "hub_attachments_swept", "Attachments whose bytes the sweep removed", registry=r
        )
        self.pushes = Counter(
            "hub_pushes",
            "Push notifications by provider, kind and outcome (delivered, retried, token_gone, "
            "rejected, dropped, expired)",
            ["provider", "kind", "outcome"],
            registry=r,
        )
        self.push_queue_depth = Gauge(
            "hub_push_queue_depth", "Pushes queued or waiting for a retry, all nodes", registry=r
        )
        self.push_jobs_queued = Counter(
            "hub_push_jobs_queued",
            "Jobs this node put on the push queue, by kind (messages: one per stored batch "
            "with a recipient who may hold a token)",
            ["kind"],
            registry=r,
        )
        self.push_audience_users = Gauge(
            "hub_push_audience_users",
            "Users this node counts as holding a push token (-1: not known yet, all counted)",
            registry=r,
        )
        self.push_provider_seconds = Histogram(
            "hub_push_provider_seconds",
            "Time a push provider took to answer one request",
            ["provider"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.push_latency_seconds = Histogram(
            "hub_push_latency_seconds",
            "From the commit (or call event) to the provider's answer",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
