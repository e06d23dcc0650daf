"""Origin -> edge across "machines": two SFU processes in two network namespaces.

The publisher (aiortc, WHIP) and the origin SFU live in one namespace, the edge SFU
and a headless Chromium viewer in the other, linked by a veth pair. The edge pipes
the room from the origin over an SRTP PipeTransport (sfu/lib/Edge.js) and follows
the publisher when it leaves and comes back.
"""

from __future__ import annotations


import pytest

from privastream_testkit.processes import wait_until
from privastream_testkit.sfu import Netns, PublisherThread, SfuProcess, Viewers


pytestmark = pytest.mark.usefixtures("sfu_prerequisites")


def test_edge_serves_a_room_published_at_the_origin():
    with Netns("ps-sfu-edge") as edge_ns, \
            Netns("ps-sfu-origin", "198.18.8.1/24", peer=edge_ns, peer_cidr="198.18.8.2/24") as origin_ns:
        with origin_ns.entered():
            origin = SfuProcess.start(origin_ns.ip, env={"SFU_WORKERS": "1"})
            publisher = PublisherThread()
        try:
            with edge_ns.entered():
                edge = SfuProcess.start(edge_ns.ip, env={
                    "SFU_WORKERS": "1",
                    "SFU_ORIGIN_URL": origin.base_url,
                    "SFU_ORIGIN_TOKEN": origin.admin_token,
                })
                viewers = Viewers()
            try:
                with edge_ns.entered():
                    # The edge refuses WHIP: publishers go to the origin.
                    status, _, body = edge.request("POST", "/whip/show", b"v=0\r\n", {
                        "Authorization": f"Bearer {edge.publish_token}", "Content-Type": "application/sdp"})
                    assert (status, body) == (403, b"this SFU is an edge: publish to its origin\n")
                    page = viewers.open(f"{edge.base_url}/room/show")
                    wait_until(lambda: page.evaluate("window.privastream.status()") == "waiting", 20, interval=0.2,
                               what="waiting at the edge")

                publisher.publish(f"{origin.base_url}/whip/show", origin.publish_token)
                with edge_ns.entered():
                    stats = viewers.wait_decoding(page, frames=30)
                    assert stats["video"]["codec"] == "video/H264"
                    edge_room = edge.stats()["rooms"][0]
                    assert edge_room["publisher"]["kind"] == "origin-feed"
                    assert [p["codec"] for p in edge_room["producers"]] == ["audio/opus", "video/H264"]
                with origin_ns.entered():
                    origin_room = origin.stats()["rooms"][0]
                    # The publisher's WebRtcTransport and one pipe to the edge; no viewers.
                    assert origin_room["viewers"] == 0
                    assert origin_room["routers"][0]["transports"] == 2

                # The publisher leaves and comes back: the edge re-pipes by itself.
                publisher.stop(delete=True)
                with edge_ns.entered():
                    wait_until(lambda: page.evaluate("window.privastream.status()") == "waiting", 20, interval=0.2,
                               what="waiting after the publisher left")
                publisher.publish(f"{origin.base_url}/whip/show", origin.publish_token)
                with edge_ns.entered():
                    viewers.wait_decoding(page, frames=30)
            finally:
                with edge_ns.entered():
                    viewers.close()
                    edge.stop()
        finally:
            publisher.shutdown()
            origin.stop()
