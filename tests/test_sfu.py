"""The SFU end to end: an aiortc WHIP publisher shaped like OBS -> mediasoup -> headless Chromium.

Everything real: the mediasoup worker built by sfu/setup.sh, `node sfu/server.js`,
aiortc publishing x264 High-profile H.264 + Opus, Debian's Chromium decoding it.
It all runs inside a network namespace with a veth pair (root required), because
WebRTC gathers no candidates on loopback alone.
"""

from __future__ import annotations

import json
import time

import pytest

from privastream_testkit.processes import wait_until
from privastream_testkit.sfu import PublisherThread, SfuProcess, Viewers, sfu_in_netns


pytestmark = pytest.mark.usefixtures("sfu_prerequisites")


ROOM = "stage"
STALE_MS = 1500
# Two viewers (audio + video consumers each) fill a router: the third goes to the
# other worker through pipeToRouter.
ROUTER_MAX_CONSUMERS = 4


@pytest.fixture(scope="module")
def sfu():
    with sfu_in_netns("ps-sfu-test", "198.18.7.1/24", {
        "SFU_WORKERS": "2",
        "SFU_PUBLISHER_STALE_MS": str(STALE_MS),
        "SFU_ROUTER_MAX_CONSUMERS": str(ROUTER_MAX_CONSUMERS),
        "SFU_MAX_BODY_BYTES": "16384",
    }) as process:
        yield process


@pytest.fixture(scope="module")
def viewers(sfu):
    with Viewers() as browser:
        yield browser


@pytest.fixture
def publisher(sfu):
    thread = PublisherThread()
    yield thread
    thread.shutdown()


def whip_url(sfu, room: str = ROOM) -> str:
    return f"{sfu.base_url}/whip/{room}"


def post_offer(sfu, body: bytes, token: str | None = "publish", content_type: str = "application/sdp",
               room: str = ROOM):
    headers = {"Content-Type": content_type}
    if token == "publish":
        headers["Authorization"] = f"Bearer {sfu.publish_token}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return sfu.request("POST", f"/whip/{room}", body, headers)


def test_whip_http_errors(sfu):
    """Each refusal of RFC 9725 ingest gets its own status and says why."""
    offer = b"v=0\r\n"
    status, headers, body = post_offer(sfu, offer, token=None)
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    status, _, body = post_offer(sfu, offer, token="not-the-token")
    assert (status, body) == (403, b"wrong publish token\n")
    status, _, body = post_offer(sfu, offer, content_type="text/plain")
    assert status == 415 and b"application/sdp" in body
    status, _, body = post_offer(sfu, b"v=0\r\n" + b"a=x\r\n" * 5000)
    assert status == 413 and b"16384-byte limit" in body
    status, _, body = post_offer(sfu, b"this is not sdp")
    assert status == 400 and b"SDP offer" in body
    g722_only = (b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AA:BB\r\n"
                 b"a=setup:actpass\r\nm=audio 9 UDP/TLS/RTP/SAVPF 9\r\na=mid:0\r\na=sendonly\r\n"
                 b"a=rtpmap:9 G722/8000\r\na=ssrc:1 cname:x\r\n")
    status, _, body = post_offer(sfu, g722_only)
    assert status == 400 and b"no usable send section" in body
    status, headers, _ = sfu.request("OPTIONS", f"/whip/{ROOM}")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    assert "Location" in headers["Access-Control-Expose-Headers"]
    assert sfu.request("GET", "/api/stats")[0] == 401
    assert sfu.request("GET", "/api/rooms", headers={"Authorization": "Bearer nope"})[0] == 403
    assert sfu.request("GET", "/nothing/here")[0] == 404
    # Nothing was created by any of these.
    assert sfu.stats()["totals"] == {"routers": 0, "transports": 0, "producers": 0, "consumers": 0}


def test_view_tokens_and_rate_limit(sfu):
    """Room links need the room's view token when SFU_VIEW_TOKEN is set; floods get 429."""
    guarded = SfuProcess.start(sfu.base_url.split("//")[1].split(":")[0], port=8081, env={
        "SFU_VIEW_TOKEN": "view-secret", "SFU_RATE_LIMIT_PER_MINUTE": "8",
        "SFU_RTC_MIN_PORT": "41000", "SFU_RTC_MAX_PORT": "41999"})
    try:
        admin = {"Authorization": f"Bearer {guarded.admin_token}"}
        status, _, body = guarded.request("GET", "/api/rooms/private/link", headers=admin)
        link = json.loads(body)["path"]
        assert status == 200 and link.startswith("/room/private?token=")
        assert guarded.request("GET", "/room/private")[0] == 401
        assert guarded.request("GET", "/room/private?token=wrong")[0] == 403
        assert guarded.request("GET", link.replace("/private?", "/other?"))[0] == 403  # per room
        assert guarded.request("GET", link)[0] == 200
        statuses = [guarded.request("GET", "/healthz") for _ in range(6)]
        assert statuses[-1][0] == 429 and int(statuses[-1][1]["Retry-After"]) > 0
    finally:
        guarded.stop()


def test_viewers_decode_obs_shaped_h264_high_and_opus(sfu, viewers, publisher):
    """A viewer waiting before the publisher, then two more: all decode H.264 High + Opus.

    OBS signals 42e01f but x264 sends High profile, which Debian's Chromium does not
    list; the SFU's profile policy (sfu/lib/sdp.js) must still get it decoded.
    The third viewer lands on a second router on the other worker (pipeToRouter).
    """
    early = viewers.open(f"{sfu.base_url}/room/{ROOM}")
    wait_until(lambda: early.evaluate("window.privastream.status()") == "waiting", 20, interval=0.2,
               what="waiting state")

    pub = publisher.publish(whip_url(sfu), sfu.publish_token)
    assert pub.resource_url.startswith(f"{sfu.base_url}/whip/{ROOM}/")
    # One publisher at a time: a second one while the first sends is refused.
    second = PublisherThread()
    try:
        assert second.try_publish(whip_url(sfu), sfu.publish_token) == 409
    finally:
        second.shutdown()

    late = [viewers.open(f"{sfu.base_url}/room/{ROOM}") for _ in range(2)]
    for page in [early, *late]:
        stats = viewers.wait_decoding(page, frames=30)
        assert stats["video"]["codec"] == "video/H264"
        assert (stats["video"]["frameWidth"], stats["video"]["frameHeight"]) == (640, 360)
        assert stats["audio"]["codec"] == "audio/opus"
        assert stats["audio"]["totalSamplesReceived"] > stats["audio"]["concealedSamples"]
    assert late[-1].inner_text("#viewers") == "3 watching"

    room = sfu.stats()["rooms"][0]
    assert [p["codec"] for p in room["producers"]] == ["audio/opus", "video/H264"]
    assert len(room["routers"]) == 2 and len({r["workerPid"] for r in room["routers"]}) == 2
    assert sorted(r["viewers"] for r in room["routers"]) == [1, 2]

    # Trickle is not supported: the 405 RFC 9725 allows.
    status, headers, _ = sfu.request("PATCH", pub.resource_url.replace(sfu.base_url, ""), b"",
                                     {"Authorization": f"Bearer {sfu.publish_token}"})
    assert status == 405 and headers["Allow"] == "DELETE, OPTIONS"


def test_publisher_drop_and_reconnect(sfu, viewers, publisher):
    """OBS vanishes without DELETE: replaced once stale; then a clean DELETE and a new publisher."""
    page = viewers.open(f"{sfu.base_url}/room/{ROOM}")
    publisher.publish(whip_url(sfu), sfu.publish_token)
    viewers.wait_decoding(page, frames=20)

    publisher.vanish()
    time.sleep(STALE_MS / 1000 + 1.0)
    publisher.publish(whip_url(sfu), sfu.publish_token)
    assert sfu.log_matches(r"replacing a stale publisher")
    for each in viewers.pages:
        viewers.wait_decoding(each, frames=30)

    publisher.stop(delete=True)
    wait_until(lambda: page.evaluate("window.privastream.status()") == "waiting", 15, interval=0.2,
               what="waiting state")
    assert sfu.stats()["totals"]["consumers"] == 0
    publisher.publish(whip_url(sfu), sfu.publish_token)
    viewers.wait_decoding(page, frames=30)


def test_delete_and_leaving_free_everything(sfu, viewers, publisher):
    """After DELETE and the last viewer leaving, mediasoup holds no router, transport or consumer."""
    publisher.publish(whip_url(sfu), sfu.publish_token)
    viewers.wait_decoding(viewers.pages[0], frames=10)
    publisher.stop(delete=True)
    for page in list(viewers.pages):
        viewers.close_page(page)
    totals = wait_until(lambda: (t := sfu.stats()["totals"])["routers"] == 0 and t, 15, interval=0.2,
                        what="all mediasoup objects closed")
    assert totals == {"routers": 0, "transports": 0, "producers": 0, "consumers": 0}


def test_vp8_publisher(sfu, viewers, publisher):
    """aiortc's own offer (VP8 first) is carried as VP8."""
    publisher.publish(whip_url(sfu, "vp8"), sfu.publish_token, obs_shaped=False, size=(320, 240))
    page = viewers.open(f"{sfu.base_url}/room/vp8")
    stats = viewers.wait_decoding(page, frames=20)
    assert stats["video"]["codec"] == "video/VP8"
    publisher.stop()
    viewers.close_page(page)


def test_whep_player(sfu, viewers, publisher):
    """A plain RTCPeerConnection WHEP player (no mediasoup-client) decodes the stream."""
    page = viewers.open(f"{sfu.base_url}/healthz")
    assert viewers.play_whep(page, f"{sfu.base_url}/whep/whep")["status"] == 404  # not live yet
    publisher.publish(whip_url(sfu, "whep"), sfu.publish_token)
    result = viewers.play_whep(page, f"{sfu.base_url}/whep/whep")
    assert result["status"] == 201, result
    stats = viewers.wait_whep_decoding(page, frames=30)
    assert stats["audio"]["samples"] > 0
    assert sfu.request("DELETE", result["location"])[0] == 200
    viewers.close_page(page)
