"""The WHIP offers OBS 30, 31 and 32 send, as their sources build them, against the real SFU.

OBS's own WHIP client cannot run here (Debian builds OBS without it), so the offers
are reconstructed from OBS's plugins/obs-webrtc/whip-output.cpp at each release and
the libdatachannel version it ships (tests/fixtures/obs_whip/README.md says what
comes from where). Each must get a 201 with a Location that OBS can resolve, an
answer that OBS's checks and libdatachannel accept, Producers for both tracks and a
DELETE that frees everything. Then each offer goes out once more from a real
publisher (aiortc, with only its ICE credentials, fingerprint and SSRCs put into
OBS's text) and a Chromium viewer must decode what it sends.
"""

from __future__ import annotations

import re
from pathlib import Path

import pylibdatachannel
import pytest

from privastream_testkit.processes import wait_until
from privastream_testkit.sfu import PublisherThread, Viewers, sfu_in_netns

FIXTURES = Path(__file__).parent / "fixtures" / "obs_whip"
SINGLE_LAYER = ["obs-30.0.sdp", "obs-31.0.sdp", "obs-32.0.sdp", "obs-32.1.sdp", "obs-32.1-libdatachannel-0.22.sdp"]


pytestmark = pytest.mark.usefixtures("sfu_prerequisites")


@pytest.fixture(scope="module")
def sfu():
    with sfu_in_netns("ps-sfu-obs", "198.18.11.1/24", {"SFU_WORKERS": "1"}) as process:
        yield process


@pytest.fixture(scope="module")
def viewers(sfu):
    with Viewers() as browser:
        yield browser


def room_of(fixture: str) -> str:
    return fixture.removesuffix(".sdp").replace(".", "-")


def sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """(session lines, [lines of each m= section])."""
    lines = sdp.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return lines[:starts[0]], [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]


def simulcast_layers_in_answer(answer: str) -> int:
    """OBS 32.1's own count of accepted layers (whip-utils.h): 0 without a=simulcast, else its ';' + 1."""
    match = re.search(r"a=simulcast[^\r\n]*", answer)
    return match.group(0).count(";") + 1 if match else 0


def publish(sfu, room: str, fixture: str) -> tuple[str, str]:
    """POSTs the fixture as OBS does; returns (answer, Location)."""
    offer = (FIXTURES / fixture).read_bytes()
    status, headers, body = sfu.request("POST", f"/whip/{room}", offer, {
        "Content-Type": "application/sdp", "Authorization": f"Bearer {sfu.publish_token}",
        "User-Agent": "Mozilla/5.0 (OBS-Studio/32.1.0; Linux x86_64)"})
    assert status == 201, body
    assert headers["Content-Type"] == "application/sdp"
    return body.decode(), headers["Location"]


def delete(sfu, location: str) -> None:
    """DELETE as OBS sends it: relative Locations are resolved against the POST's URL path."""
    auth = {"Authorization": f"Bearer {sfu.publish_token}"}
    assert sfu.request("DELETE", location, headers=auth)[0] == 200
    assert sfu.request("DELETE", location, headers=auth)[0] == 404
    wait_until(lambda: sfu.stats()["totals"] == {"routers": 0, "transports": 0, "producers": 0, "consumers": 0},
               15, interval=0.2, what="everything freed after DELETE")


def assert_usable_answer(answer: str, offer: str, ip: str) -> None:
    """What libdatachannel needs to accept the answer and connect to an ICE-lite, DTLS-server SFU.

    OBS 30.0 builds rtc::Description from the answer outside any try: an answer it
    cannot parse would take OBS down, so libdatachannel itself must read it, and
    what it writes back must still hold every part the connection needs.
    """
    assert answer.startswith("v=0\r\n")
    read_back = str(pylibdatachannel.Description(answer, pylibdatachannel.DescriptionType.ANSWER)).splitlines()
    for line in answer.splitlines():
        if line.startswith(("a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:", "a=candidate:", "a=mid:", "a=rtpmap:",
                            "a=setup:", "a=recvonly", "a=rid:", "a=simulcast:")):
            assert line in read_back, f"libdatachannel lost {line!r}"
    session, media = sections(answer)
    _, offered = sections(offer)
    assert "a=ice-lite" in session
    assert re.search(r"^a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$", "\n".join(session), re.M)
    assert "a=group:BUNDLE 0 1" in session
    for answered, asked in zip(media, offered, strict=True):
        kind, payload = asked[0].split(" ")[0], asked[0].split(" ")[3]
        assert answered[0].startswith(f"{kind} ") and answered[0].split(" ")[3:] == [payload]
        mid = next(line for line in asked if line.startswith("a=mid:"))
        assert mid in answered and "a=recvonly" in answered
        # offer actpass -> the SFU is the DTLS server; OBS becomes the client
        assert "a=setup:passive" in answered
        assert any(line.startswith("a=ice-ufrag:") for line in answered)
        rtpmap = next(line for line in asked if line.startswith("a=rtpmap:"))
        assert rtpmap in answered
        candidates = [line for line in answered if line.startswith("a=candidate:")]
        assert any(" udp " in c.lower() and f" {ip} " in c and c.endswith("typ host") for c in candidates)


@pytest.mark.parametrize("fixture", SINGLE_LAYER)
def test_obs_offer_gets_a_usable_answer_location_and_delete(sfu, fixture):
    room = room_of(fixture)
    answer, location = publish(sfu, room, fixture)
    # OBS keeps a relative Location's path and drops its query, so the resource is a path alone.
    assert re.fullmatch(rf"/whip/{room}/[0-9a-f-]{{36}}", location)
    assert_usable_answer(answer, (FIXTURES / fixture).read_text(), sfu.base_url.split("//")[1].split(":")[0])
    assert simulcast_layers_in_answer(answer) == 0
    producers = sfu.stats()["rooms"][0]["producers"]
    assert [(p["kind"], p["codec"]) for p in producers] == [("audio", "audio/opus"), ("video", "video/H264")]
    delete(sfu, location)


def test_obs_simulcast_offer_gets_every_layer(sfu):
    """OBS 32.1+ simulcast: three rids, no a=ssrc; OBS stops unless the answer accepts all three layers."""
    answer, location = publish(sfu, "obs-simulcast", "obs-32.1-simulcast.sdp")
    assert_usable_answer(answer, (FIXTURES / "obs-32.1-simulcast.sdp").read_text(),
                         sfu.base_url.split("//")[1].split(":")[0])
    assert simulcast_layers_in_answer(answer) == 3
    _, media = sections(answer)
    assert [line for line in media[1] if line.startswith("a=rid:")] == ["a=rid:0 recv", "a=rid:1 recv", "a=rid:2 recv"]
    assert "a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in media[1]
    video = next(p for p in sfu.stats()["rooms"][0]["producers"] if p["kind"] == "video")
    # OBS's layer 0 is the full-size output and each next one smaller; mediasoup wants the
    # smallest first, and gives viewers the last (largest) one.
    assert video["encodings"] == ["2", "1", "0"]
    delete(sfu, location)


@pytest.mark.parametrize("fixture", SINGLE_LAYER)
def test_obs_offer_carries_media_to_a_viewer(sfu, viewers, fixture):
    """The answer to OBS's own offer text works: ICE, DTLS and H.264 + Opus reach a browser."""
    room = room_of(fixture) + "-media"
    publisher = PublisherThread()
    try:
        publisher.publish(f"{sfu.base_url}/whip/{room}", sfu.publish_token, obs_offer=(FIXTURES / fixture).read_bytes().decode())
        page = viewers.open(f"{sfu.base_url}/room/{room}")
        stats = viewers.wait_decoding(page, frames=20)
        assert (stats["video"]["codec"], stats["audio"]["codec"]) == ("video/H264", "audio/opus")
        viewers.close_page(page)
    finally:
        publisher.shutdown()
