"""The load-curve harness runs end to end: the app deployed as `make run` lays it out
(API replicas behind nginx) on this session's dev stack, one tiny step of the read mix
from vegeta with the limiter on and one with it off, and numbers that make sense come back
(bench/load_curve.py, bench/vegeta.py, bench/hey.py). Bounded: a few seconds of load."""

from __future__ import annotations

import pytest

import devstack
from bench.deployed import deployed, reconfigure
from bench.hey import ServerCpu
from bench.load_curve import READ_MIX, run_step, search_engine

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def native_stack(service_env: dict[str, str]) -> devstack.Layout:
    layout = devstack.LAYOUT
    if not devstack.is_up(layout=layout):
        pytest.skip("needs the native dev stack (nginx under its supervisord)")
    if service_env.get("POLYSHOP_DATABASE_URL") != devstack.service_env(layout=layout).get(
        "POLYSHOP_DATABASE_URL"
    ):
        pytest.skip("the services of this session are not the native dev stack's")
    if devstack.api_replicas(layout=layout):
        pytest.skip("an app already runs on this stack (make run): not replacing it")
    return layout


def test_a_tiny_step_of_the_load_curve_gives_sane_numbers(native_stack: devstack.Layout) -> None:
    limiter_off = {"POLYSHOP_RATE_LIMIT_ENABLED": "false"}
    with deployed(
        "curve_test", replicas=1, products=3, settings=limiter_off, layout=native_stack
    ) as deployment:
        steps = []
        for limiter in (False, True):
            if limiter:  # deployed with it off: one restart of the replica, not two
                # both buckets in the app (bench.load_curve's "on"): its decisions count
                in_app = {"POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "false"}
                deployment = reconfigure(
                    deployment, {"POLYSHOP_RATE_LIMIT_ENABLED": "true", **in_app}
                )
            cpu = ServerCpu(native_stack, engine=search_engine(deployment))
            assert any(name.startswith("api:") for name in cpu.meter.trees)
            assert "engine" in cpu.meter.trees
            steps.append(run_step(deployment, 4, 1.5, limiter=limiter, cpu=cpu))

    for step in steps:
        r = step.result
        assert set(step.by_kind) == set(READ_MIX)  # one closed loop sent every kind
        assert all(kind.requests > 0 for kind in step.by_kind.values())
        assert r.requests == sum(kind.requests for kind in step.by_kind.values())
        # the mix sent is the mix asked for (vegeta takes the targets in turn)
        shares = {k: v.requests / r.requests for k, v in step.by_kind.items()}
        assert all(abs(shares[k] - READ_MIX[k]) < 0.1 for k in READ_MIX), shares
        assert r.rate > 0
        assert 0 < r.p50_ms <= r.p99_ms < 10_000
        # every answer is counted once, as a status or a transport error; on this shared
        # machine a search may time out now and then, so most, not all, must be 200
        assert step.errors == r.failed(ok=(200, 429) if step.limiter else (200,))
        assert r.statuses.get(200, 0) > r.requests // 2, (r.statuses, r.errors)
        # the replicas did the work: CPU per request is positive and below a second
        assert 0 < step.cpu_ms["api"] < 1000
        assert step.cpu_ms["server"] >= step.cpu_ms["api"]
        # the search engine's JVM is part of the server (the search cache may leave it idle)
        parts = ("api", "nginx", "redis", "postgres", "engine")
        assert step.cpu_ms["server"] == pytest.approx(sum(step.cpu_ms[p] for p in parts))
        assert step.client_ms > 0
    limited = steps[1]
    assert limited.fail_open == 0  # Redis is up: every request got a decision
    assert not limited.problems
