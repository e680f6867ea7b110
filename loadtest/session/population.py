"""Who the phones are and where they connect: the population, split over the workers.

Each conversation pair lives whole in one worker (loss, duplicates and latency are settled
there), and with several nodes the placement decides which node each side talks to: senders
on the first half and recipients on the rest (``split``), or each pair across two neighbours
(``cross``, which the soak uses so that every kill cuts conversations).
"""

from __future__ import annotations

import secrets

from loadtest.model.common import Population
from loadtest.options import Options
from loadtest.plan import PairPlan, SoakPlan, WorkerPlan, split_round_robin


def population_for(options: Options, kind: str) -> Population:
    """Idle: every client idle. Otherwise pairs, plus the churners of the chat mix (5 %),
    which also take the odd client out."""
    if kind == "idle":
        return Population(pairs=0, churners=0, idle=options.clients)
    mix = options.effective_mix()
    clients = options.clients
    churners = round(clients * mix.churn_fraction) if mix.churn_fraction else 0
    pairs = max(1, (clients - churners) // 2)
    extra = clients - churners - 2 * pairs if churners else 0
    return Population(pairs=pairs, churners=churners + extra, idle=0)


class Placement:
    """Which node each side of pair ``p`` talks to."""

    def __init__(self, urls: list[str], placement: str) -> None:
        self.urls = urls
        self.split = placement == "split"

    def sender(self, p: int) -> str:
        n = len(self.urls)
        if n == 1:
            return self.urls[0]
        if self.split:
            return self.urls[p % max(1, n // 2)]
        return self.urls[p % n]

    def recipient(self, p: int) -> str:
        n = len(self.urls)
        if n == 1:
            return self.urls[0]
        if self.split:
            half = max(1, n // 2)
            return self.urls[half + p % (n - half)]
        return self.urls[(p + 1) % n]


def worker_plans(
    options: Options,
    urls: list[str],
    population: Population,
    kind: str,
    soak: SoakPlan | None = None,
) -> list[WorkerPlan]:
    o = options
    n = len(urls)
    run_id = secrets.token_hex(4)
    workers = max(1, min(o.workers, max(population.pairs, population.idle, 1)))
    place = Placement(urls, o.placement)
    plans = []
    for w in range(workers):
        pairs = [
            PairPlan(p, place.sender(p), place.recipient(p))
            for p in split_round_robin(population.pairs, workers, w)
        ]
        plans.append(
            WorkerPlan(
                index=w,
                workers=workers,
                run_id=run_id,
                target=o.target,
                client_kind=o.client_kind,
                mix=o.effective_mix(),
                rest_urls=urls,
                pairs=pairs,
                churner_urls=[
                    urls[i % n] for i in split_round_robin(population.churners, workers, w)
                ],
                idle_urls=[urls[i % n] for i in split_round_robin(population.idle, workers, w)],
                register_concurrency=o.register_concurrency,
                connect_concurrency=o.connect_concurrency,
                ack_timeout_s=o.ack_timeout,
                drain_timeout_s=o.drain_timeout,
                seed=o.seed,
                rate_share=len(pairs) / population.pairs if population.pairs else 0.0,
                with_keys=kind != "idle",
                soak=soak,
            )
        )
    return plans
