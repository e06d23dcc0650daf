"""Publish a synthetic 720p H.264 + Opus stream over WHIP (privastream_testkit.whip's publisher).

    .venv/bin/python scripts/whip_client.py http://host:8080/whip/demo --token T --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from privastream_testkit.whip import ToneAudioTrack, WhipError, X264PacketTrack, moving_pattern, publish


def main() -> int:
    parser = argparse.ArgumentParser(description="Publish a synthetic 720p H.264 + Opus stream over WHIP.")
    parser.add_argument("url", help="WHIP endpoint, e.g. http://198.18.7.1:8080/whip/demo")
    parser.add_argument("--token", required=True, help="the SFU's publish token")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish (default 30)")
    parser.add_argument("--size", default="1280x720", metavar="WxH", help="video size (default 1280x720)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    parser.add_argument("--bitrate", type=int, default=2_500_000, help="video bits per second (default 2500000)")
    parser.add_argument("--loop", action="store_true",
                        help="encode 4 s once and replay it (near-zero publisher CPU, for benchmarks)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    async def run() -> None:
        video = X264PacketTrack(moving_pattern(width, height), width, height, args.fps, args.bitrate,
                                loop_frames=4 * args.fps if args.loop else 0)
        publisher = await publish(args.url, args.token, video, ToneAudioTrack())
        print(f"publishing to {publisher.resource_url} for {args.seconds:.0f} s", flush=True)
        await asyncio.sleep(args.seconds)
        await publisher.close()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run())
    except WhipError as error:
        print(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
