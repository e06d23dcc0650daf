"""Anonymous viewers take all the SFU lets them; the publisher's stream must not notice.

In a network namespace (root needed): an SFU whose RTC port range is `--ports` wide,
behind a pretend reverse proxy (this script, named in SFU_TRUSTED_PROXIES, so that
it can speak for `--addresses` client addresses through X-Forwarded-For). A
publisher (whip_client.py, x264 + Opus) sends into room "show"; an SRTP rtp-out
viewer (admin API) feeds a sink that counts its packets and sequence gaps.

Then the flood, from anonymous viewers only:
  1. viewer sessions in new rooms until the room cap refuses one;
  2. one address opening sessions past its per-address cap;
  3. viewer sessions, each with its WebRtcTransport, spread over those rooms and
     "show", until the SFU-wide viewer cap refuses one;
  4. one address hammering the API past the rate limit;
  5. four simultaneous WHIP POSTs to one room (with the publish token);
  6. a second publisher starting in a new room while all of that is held open.

Prints the caps, what each step got, and the publisher's stream before, during
and after: packets/s the SFU receives from it, packets/s and loss at the sink, and
whether its WHIP session is still the same one.

    sudo .venv/bin/python scripts/sfu_flood.py --ports 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import threading
import time
from collections import Counter

from privastream_testkit import REPO
from privastream_testkit.sfu import SINK_PORT, SfuProcess, admin, sfu_with_sink, start_publisher, stop_publisher

OBS_OFFER = (REPO / "tests" / "fixtures" / "obs_whip" / "obs-31.0.sdp").read_bytes()


def publisher_state(sfu: SfuProcess, room: str) -> dict:
    return next((r["publisher"] or {}) for r in sfu.stats()["rooms"] if r["id"] == room)


def measure(sfu: SfuProcess, sink_conn, seconds: float) -> dict:
    """The publisher's stream over `seconds`: packets/s into the SFU, packets/s and loss at the sink."""
    sink_conn.send("reset")
    sink_conn.recv()
    before, t0 = publisher_state(sfu, "show")["packetsReceived"], time.monotonic()
    time.sleep(seconds)
    sink_conn.send("read")
    counts = sink_conn.recv()
    after, elapsed = publisher_state(sfu, "show")["packetsReceived"], time.monotonic() - t0
    return {"in": (after - before) / elapsed, "out": counts["packets"] / elapsed,
            "loss": 1 - counts["packets"] / counts["expected"] if counts["expected"] else float("nan")}


def whip_race(sfu: SfuProcess, room: str, posts: int = 4) -> list[int]:
    results: list[tuple[int, dict, bytes]] = []
    barrier = threading.Barrier(posts)

    def post() -> None:
        barrier.wait()
        results.append(sfu.request("POST", f"/whip/{room}", OBS_OFFER, {
            "Content-Type": "application/sdp", "Authorization": f"Bearer {sfu.publish_token}"}))

    threads = [threading.Thread(target=post) for _ in range(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for status, headers, _ in results:
        if status == 201:
            sfu.request("DELETE", headers["Location"], headers={"Authorization": f"Bearer {sfu.publish_token}"})
    return sorted(status for status, _, _ in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=1000, help="size of the SFU's RTC port range (default 1000)")
    parser.add_argument("--addresses", type=int, default=40, help="client addresses the flood comes from (default 40)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each measurement window (default 10)")
    parser.add_argument("--workers", type=int, default=0, help="mediasoup workers (default: one per core)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    cidr = "198.18.12.1/24"
    env = {"SFU_TRUSTED_PROXIES": cidr.split("/")[0], "SFU_RTC_MIN_PORT": "40000",
           "SFU_RTC_MAX_PORT": str(40000 + args.ports - 1)}
    if args.workers:
        env["SFU_WORKERS"] = str(args.workers)
    with sfu_with_sink("ps-sfu-flood", cidr, env) as (ns, sfu, here):
        publishers, sessions = [], []
        try:
            publishers.append(start_publisher(sfu, "show", "640x360", 800_000))
            status, _, body = sfu.request("POST", "/api/rooms/show/rtp-out",
                                          json.dumps({"ip": ns.ip, "port": SINK_PORT}).encode(), admin(sfu))
            assert status == 201, body
            time.sleep(2.0)
            limits = sfu.stats()["limits"]
            print(f"caps: {limits['rooms']} rooms, {limits['viewers']} viewers, {limits['viewersPerRoom']} per room, "
                  f"{limits['viewersPerAddress']} per address; {args.ports} RTC ports, {limits['portsPerRoom']} "
                  f"reserved per room; workers {len(sfu.stats()['workers'])}", flush=True)
            session_id = publisher_state(sfu, "show")["session"]
            rows = [("before", measure(sfu, here, args.seconds))]

            addresses = itertools.cycle(f"203.0.113.{i + 1}" for i in range(args.addresses))
            refusals: Counter[str] = Counter()
            started = time.monotonic()
            rooms = ["show"]
            for index in itertools.count():
                session = sfu.open_viewer(f"flood-{index}", next(addresses))
                if session.status != 200:
                    refusals[f"{session.status} {session.reason}"] += 1
                    break
                sessions.append(session)
                rooms.append(f"flood-{index}")
            print(f"1. rooms: {len(rooms)} open (the publisher's and {len(rooms) - 1} opened by viewers)", flush=True)
            greedy = [sfu.open_viewer("show", "198.51.100.1") for _ in range(limits["viewersPerAddress"] + 5)]
            print(f"2. one address: {dict(Counter(s.status for s in greedy))}", flush=True)
            sessions += [s for s in greedy if s.status == 200]
            for room in itertools.cycle(rooms):
                session = sfu.open_viewer(room, next(addresses))
                if session.status != 200:
                    refusals[f"{session.status} {session.reason}"] += 1
                    break
                sessions.append(session)
                status, body = session.transport()
                if status != 200:
                    raise RuntimeError(f"an admitted viewer got no transport: {status} {body}")
            print(f"3. viewers: {len(sessions)} sessions open, all but the one address's with a WebRtcTransport, "
                  f"after {time.monotonic() - started:.1f} s", flush=True)
            hammer = Counter(sfu.request("GET", "/healthz", headers={"X-Forwarded-For": "198.51.100.2"})[0]
                             for _ in range(700))
            print(f"4. rate limit, one address, 700 requests: {dict(hammer)}", flush=True)
            print(f"5. four simultaneous WHIP POSTs: {whip_race(sfu, 'race')}", flush=True)
            publishers.append(start_publisher(sfu, "second", "320x240", 300_000))
            print("6. a second publisher started in a new room during the flood", flush=True)
            for reason, count in refusals.items():
                print(f"   refused {count}x: {reason}")
            rows.append(("during", measure(sfu, here, args.seconds)))
            for session in sessions:
                session.close()
            sessions = []
            time.sleep(2.0)
            rows.append(("after", measure(sfu, here, args.seconds)))
            same = publisher_state(sfu, "show")["session"] == session_id
            print(f"{'window':>7} {'pkts/s in':>10} {'pkts/s out':>10} {'loss':>7}")
            for name, row in rows:
                print(f"{name:>7} {row['in']:>10.0f} {row['out']:>10.0f} {row['loss'] * 100:>6.2f}%")
            print(f"publisher's WHIP session unchanged throughout: {same}")
        finally:
            for session in sessions:
                session.close()
            for publisher in publishers:
                stop_publisher(publisher)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
