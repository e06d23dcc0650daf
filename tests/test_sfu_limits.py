"""What anonymous viewers can take from the SFU, and what they can never take from the publisher.

Real SFU processes (one mediasoup worker, the default on a 1-core host) in a network
namespace. Viewer sessions are opened over the room page's own HTTP API (the event
stream and the transport request), as a script trying to exhaust the SFU would; the
test client stands in for a reverse proxy where SFU_TRUSTED_PROXIES names it.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from privastream_testkit import REPO
from privastream_testkit.processes import wait_until
from privastream_testkit.sfu import Netns, PublisherThread, SfuProcess, Viewers

OBS_OFFER = (Path(__file__).parent / "fixtures" / "obs_whip" / "obs-31.0.sdp").read_bytes()


pytestmark = pytest.mark.usefixtures("sfu_prerequisites")


@pytest.fixture(scope="module")
def netns():
    with Netns("ps-sfu-limits", "198.18.10.1/24") as ns, ns.entered():
        yield ns


@pytest.fixture(scope="module")
def sfu(netns):
    """Small caps, the test client trusted as the reverse proxy."""
    process = SfuProcess.start(netns.ip, env={
        "SFU_WORKERS": "1",
        "SFU_TRUSTED_PROXIES": netns.ip,
        "SFU_MAX_ROOMS": "2",
        "SFU_MAX_VIEWERS_PER_ROOM": "3",
        "SFU_MAX_VIEWERS_PER_IP": "2",
    })
    try:
        yield process
    finally:
        process.stop()


def publish_offer(sfu, room: str, offer: bytes = OBS_OFFER, forwarded_for: str | None = None):
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {sfu.publish_token}"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return sfu.request("POST", f"/whip/{room}", offer, headers)


def test_viewer_sessions_are_capped_per_address_room_and_server(sfu):
    """Anonymous viewers cannot open unlimited rooms or sessions; the publisher is never refused by those caps."""
    sessions = []
    try:
        sessions += [sfu.open_viewer("one", "203.0.113.1") for _ in range(2)]
        assert [s.status for s in sessions] == [200, 200]
        third = sfu.open_viewer("one", "203.0.113.1")
        assert third.status == 429 and "2 viewer sessions from one address" in third.reason

        sessions.append(sfu.open_viewer("one", "203.0.113.2"))
        assert sessions[-1].status == 200
        full = sfu.open_viewer("one", "203.0.113.3")
        assert full.status == 503 and "room 'one' is full (3 viewers)" in full.reason

        sessions.append(sfu.open_viewer("two", "203.0.113.3"))
        assert sessions[-1].status == 200
        too_many_rooms = sfu.open_viewer("three", "203.0.113.4")
        assert too_many_rooms.status == 503 and "2 rooms" in too_many_rooms.reason

        status, headers, _ = publish_offer(sfu, "three")
        assert status == 201, "the room cap must never refuse the publisher"
        assert sfu.request("DELETE", headers["Location"], headers={"Authorization": f"Bearer {sfu.publish_token}"})[0] == 200
    finally:
        for session in sessions:
            session.close()
    wait_until(lambda: sfu.stats()["totals"]["routers"] == 0, 15, interval=0.2, what="every room closed")


def test_simultaneous_whip_posts_one_wins(sfu):
    """Of several WHIP POSTs to one room at the same moment, one gets 201 and the others a clean 409."""
    results: list[tuple[int, dict, bytes]] = []
    start = threading.Barrier(4)

    def post() -> None:
        start.wait()
        results.append(publish_offer(sfu, "race"))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(status for status, _, _ in results) == [201, 409, 409, 409]
    for status, headers, body in results:
        if status == 409:
            assert b"room 'race' already has" in body
        else:
            winner = headers["Location"]
    assert sfu.request("DELETE", winner, headers={"Authorization": f"Bearer {sfu.publish_token}"})[0] == 200
    wait_until(lambda: sfu.stats()["totals"]["routers"] == 0, 15, interval=0.2, what="the race room closed")


def test_forwarded_addresses_are_believed_only_from_the_proxy(netns):
    """Behind the proxy, one viewer's flood neither locks out other viewers nor the publisher; without a
    trusted proxy a forged X-Forwarded-For does not buy a fresh rate-limit bucket."""
    proxied = SfuProcess.start(netns.ip, port=8082, env={
        "SFU_WORKERS": "1", "SFU_TRUSTED_PROXIES": f"192.0.2.7, {netns.ip}", "SFU_RATE_LIMIT_PER_MINUTE": "8",
        "SFU_RTC_MIN_PORT": "41000", "SFU_RTC_MAX_PORT": "41999"})
    direct = SfuProcess.start(netns.ip, port=8083, env={
        "SFU_WORKERS": "1", "SFU_RATE_LIMIT_PER_MINUTE": "8",
        "SFU_RTC_MIN_PORT": "42000", "SFU_RTC_MAX_PORT": "42999"})
    try:
        flood = [proxied.request("GET", "/healthz", headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.66"})[0]
                 for _ in range(9)]
        assert flood[-1] == 429
        # The rightmost address the proxy did not add is the client: 203.0.113.66 above.
        assert proxied.request("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.66"})[0] == 429
        assert proxied.request("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.67"})[0] == 200
        # The publisher behind the same address as the flood still gets in: it holds the token.
        status, headers, _ = publish_offer(proxied, "show", forwarded_for="203.0.113.66")
        assert status == 201
        assert proxied.request("DELETE", headers["Location"], headers={
            "Authorization": f"Bearer {proxied.publish_token}", "X-Forwarded-For": "203.0.113.66"})[0] == 200

        forged = [direct.request("GET", "/healthz", headers={"X-Forwarded-For": f"203.0.113.{i}"})[0]
                  for i in range(9)]
        assert forged[-1] == 429
    finally:
        proxied.stop()
        direct.stop()


def test_bad_proxy_setting_stops_the_sfu():
    """A typo in SFU_TRUSTED_PROXIES must not silently trust nobody, or everybody."""
    result = subprocess.run(["node", str(REPO / "sfu" / "server.js")], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "SFU_LISTEN_IP": "127.0.0.1",
                                 "SFU_TRUSTED_PROXIES": "10.0.0.1,proxy.example"})
    assert result.returncode == 1
    assert "SFU_TRUSTED_PROXIES" in result.stdout + result.stderr and "proxy.example" in result.stdout + result.stderr


def test_rtc_ports_always_leave_room_for_the_publisher(netns):
    """Viewers are capped below the RTC port range, so that filling it cannot refuse the publisher a port."""
    small = SfuProcess.start(netns.ip, port=8084, env={
        "SFU_WORKERS": "1", "SFU_MAX_ROOMS": "1", "SFU_MAX_VIEWERS_PER_IP": "100",
        "SFU_RTC_MIN_PORT": "43000", "SFU_RTC_MAX_PORT": "43029"})
    sessions, refused = [], None
    try:
        for _ in range(40):
            session = small.open_viewer("show")
            if session.status != 200:
                refused = session
                break
            sessions.append(session)
            status, body = session.transport()
            assert status == 200, f"viewer {len(sessions)} was admitted but got no transport: {body}"
        limits = small.stats()["limits"]
        assert len(sessions) == limits["viewers"] == 30 - limits["portsPerRoom"]
        assert refused.status == 503 and f"{limits['viewers']} viewers" in refused.reason
        status, headers, _ = publish_offer(small, "show")
        assert status == 201
    finally:
        for session in sessions:
            session.close()
        small.stop()


def test_whep_player_with_one_worker(netns, sfu):
    """A WHEP player gets its own router; with one worker it shares the worker with the publisher's."""
    publisher = PublisherThread()
    viewers = Viewers()
    try:
        publisher.publish(f"{sfu.base_url}/whip/whep", sfu.publish_token)
        page = viewers.open(f"{sfu.base_url}/healthz")
        result = viewers.play_whep(page, f"{sfu.base_url}/whep/whep")
        assert result["status"] == 201, result
        stats = viewers.wait_whep_decoding(page, frames=30)
        assert stats["audio"]["samples"] > 0
        assert sfu.request("DELETE", result["location"])[0] == 200
    finally:
        viewers.close()
        publisher.shutdown()
