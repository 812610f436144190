"""Issue 18: rendering a fleet with session details shown against the same fleet without.

One synthetic fleet (bench/_common.py: SyntheticIoT with sessions, so every connected
thing's answer carries clientId, keepAliveDuration, cleanSession and sessionExpiry) is
rendered `per_thing: all` by two expositions, Shape(session_details=False) ("off") and
Shape(session_details=True) ("on"), in turn: off, on, off, on ... so the machine's drift
hits both alike. After one untimed rendering each (it fills the label caches), each is
timed as the renderer runs it: exposition text, then gzip, with garbage collection off (a
collection runs untimed before each), in wall time and in this thread's CPU time. Prints
each variant's median and min..max, on/off pair by pair, and the /metrics bytes both ways.

    .venv/bin/python bench/render_sessions.py --things 100000 --repeats 7
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time

from bench._common import (
    bench_shape,
    load_average,
    machine,
    median,
    now_utc,
    synthetic_fleet,
)
from exporter.exposition.series import Exposition
from exporter.web.payload import Payload

VARIANTS = ("off", "on")
MEASURES = (
    "text wall",
    "text CPU",
    "gzip wall",
    "gzip CPU",
    "text + gzip wall",
    "text + gzip CPU",
)


def _figure(values: list[float]) -> str:
    return f"{median(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--things", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7, help="renderings of each variant")
    parser.add_argument("--cycles", type=int, default=3, help="poll cycles fed before rendering")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="then cProfile a rendering; top N"
    )
    args = parser.parse_args()
    print(f"{now_utc()} {machine()} load {load_average()}")
    started = time.perf_counter()
    built = synthetic_fleet(args.things, args.cycles, sessions=True)
    expositions = {
        variant: Exposition(
            bench_shape(built.names, per_thing="all", session_details=variant == "on")
        )
        for variant in VARIANTS
    }
    print(f"fleet of {args.things:,} things built in {time.perf_counter() - started:.1f} s")
    # Per variant and measure, one sample per rendering: wall and this thread's CPU seconds.
    samples: dict[str, dict[str, list[float]]] = {
        variant: {measure: [] for measure in MEASURES} for variant in VARIANTS
    }
    size: dict[str, tuple[int, int]] = {}
    for variant in VARIANTS:  # untimed: the first fills each exposition's label cache
        expositions[variant].render(built.targets, built.fleet, {}, built.now)
    for _ in range(args.repeats):
        for variant in VARIANTS:
            gc.collect()
            gc.disable()
            try:
                wall, cpu = time.perf_counter(), time.thread_time()
                plain = expositions[variant].render(built.targets, built.fleet, {}, built.now).text
                wall_text, cpu_text = time.perf_counter(), time.thread_time()
                payload = Payload.of(plain)
                wall_end, cpu_end = time.perf_counter(), time.thread_time()
            finally:
                gc.enable()
            taken = samples[variant]
            taken["text wall"].append(wall_text - wall)
            taken["text CPU"].append(cpu_text - cpu)
            taken["gzip wall"].append(wall_end - wall_text)
            taken["gzip CPU"].append(cpu_end - cpu_text)
            taken["text + gzip wall"].append(wall_end - wall)
            taken["text + gzip CPU"].append(cpu_end - cpu)
            size[variant] = (len(plain), sum(map(len, payload.gzip_parts)))
            del plain, payload
    print(f"load {load_average()}; {args.repeats} renderings each, interleaved")
    print(
        f"{'seconds':17s} {'off median (min..max)':24s} {'on median (min..max)':24s}"
        f" {'on/off median (min..max)':24s} on/off pair by pair"
    )
    for measure in MEASURES:
        off, on = samples["off"][measure], samples["on"][measure]
        ratios = [b / a for a, b in zip(off, on, strict=True)]
        print(
            f"{measure:17s} {_figure(off):24s} {_figure(on):24s} {_figure(ratios):24s}"
            f" {' '.join(f'{ratio:.2f}' for ratio in ratios)}"
        )
    for variant in VARIANTS:
        plain_bytes, gzip_bytes = size[variant]
        print(f"/metrics {variant}: {plain_bytes:,} bytes plain, {gzip_bytes:,} gzip")
    print(
        f"bytes on/off: plain {size['on'][0] / size['off'][0]:.3f},"
        f" gzip {size['on'][1] / size['off'][1]:.3f}"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        Payload.of(expositions["on"].render(built.targets, built.fleet, {}, built.now).text)
        profiler.disable()
        print("# cProfile of one rendering with session details on (text and gzip)")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
