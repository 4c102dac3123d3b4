"""``make bench``: run every benchmark, write bench/results/*.json and BENCHMARKS.md.

Each benchmark starts its own Mosquitto, server and load on loopback and
stops by itself. Run it on a quiet machine: the figures are wall-clock rates.
``python -m bench ingest latency`` runs a subset; ``python -m bench --help``
lists them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.harness import REPO, RESULTS, machine, write_result

__all__ = ["main"]


def _ingest() -> dict[str, Any]:
    from bench.ingest import run_ingest

    return {"sqlite": run_ingest("sqlite"), "postgres": run_ingest("postgres"),
            "postgres_2_instances": run_ingest("postgres", instances=2)}


def _latency() -> dict[str, Any]:
    from bench.latency import run_latency

    return run_latency()


def _crossing() -> dict[str, Any]:
    from bench.crossing import run_crossing

    return run_crossing()


def _ack_link() -> dict[str, Any]:
    from bench.ack_link import run_ack_link

    return run_ack_link()


def _dashboard() -> dict[str, Any]:
    from bench.dashboard import run_dashboard

    return run_dashboard()


def _devices() -> dict[str, Any]:
    from bench.devices import run_devices

    return run_devices()


def _script(name: str, result: str) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        subprocess.run([sys.executable, "-m", f"bench.{name.removesuffix('.py')}"], check=True,
                       cwd=REPO)
        data: dict[str, Any] = json.loads((RESULTS / result).read_text())
        return data

    return run


# What each benchmark measures, for --help (same keys as BENCHMARKS).
ABOUT: dict[str, str] = {
    "ingest": "durable ingest from Mosquitto into SQLite and PostgreSQL (1 and 2 server "
              "instances) against a bare mosquitto_sub",
    "latency": "door event -> worker's notification under background load",
    "crossing": "person crosses -> worker's webhook, agent with the synthetic camera",
    "ack_link": "one-tap acknowledge link: tap -> incident acknowledged",
    "dashboard": "dashboard reads while a backlog drains",
    "devices": "connected devices with heartbeats this machine holds with no loss",
    "analyzer": "analysis frames/s on one thread, 320x240 and 640x480",
    "agent": "agent CPU and RSS, idle and with motion",
    "corpus": "detection quality on every labelled clip (needs DOORWATCH_CORPUS_DIR)",
    "frigate": "analyzer speed beside Frigate's motion stage",
    "cluster": "3-node RabbitMQ cluster: breach latency across node kills, ingest",
}

BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "ingest": _ingest,
    "latency": _latency,
    "crossing": _crossing,
    "ack_link": _ack_link,
    "dashboard": _dashboard,
    "devices": _devices,
    "analyzer": _script("bench_analyzer.py", "analyzer.json"),
    "agent": _script("bench_agent.py", "agent.json"),
    "corpus": _script("bench_corpus.py", "corpus.json"),
    "frigate": _script("bench_frigate.py", "frigate.json"),
    "cluster": _script("cluster.py", "cluster.json"),
}


# Benchmarks that rewrite their own marked block of BENCHMARKS.md: run alone (or
# only these), they leave the rest of the file alone.
OWN_BLOCK = {"corpus", "frigate"}


def _row(label: str, value: object, target: str) -> str:
    return f"| {label} | {value} | {target} |"


# Ingest runs (keys of ingest.json) and how the table names them.
_INGEST_RUNS = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgres_2_instances": "postgres, 2 server instances sharing the subscription",
}


def _table(results: dict[str, Any]) -> list[str]:
    rows = ["| measure | figure | target |", "|---|---|---|"]
    ingest = results.get("ingest", {})
    for backend, label in _INGEST_RUNS.items():
        run = ingest.get(backend)
        if run:
            rows.append(_row(f"durable ingest into {label} (events/s)",
                             run["server_events_per_s"],
                             ">= 20,000" if backend == "sqlite" else ""))
            rows.append(_row(f"bare mosquitto_sub, same backlog (events/s) [{backend} run]",
                             run["bare_subscriber_events_per_s"], ""))
            rows.append(_row(f"ratio ingest / bare [{backend}]", run["ratio_to_bare"], ">= 0.5"))
            if run.get("server_cpu_us_per_event") is not None:
                rows.append(_row(f"server CPU per stored event, us [{backend}, MQTT "
                                 f"{run.get('mqtt_protocol', '?')}]",
                                 run["server_cpu_us_per_event"], ""))
            if run.get("broker_cpu_us_per_message_bare") is not None:
                rows.append(_row(f"Mosquitto CPU per message, us, feeding the bare subscriber "
                                 f"/ the server [{backend}]",
                                 f"{run['broker_cpu_us_per_message_bare']} / "
                                 f"{run['broker_cpu_us_per_message_server']}", ""))
    cluster = results.get("cluster")
    if cluster:
        rows.append(_row("durable ingest through a 3-node RabbitMQ cluster (quorum queue) into "
                         "postgres, 2 server instances (events/s)",
                         cluster["ingest_events_per_s"], ""))
        rows.append(_row("server CPU per stored event / RabbitMQ CPU per message (all 3 nodes), "
                         "us [cluster]", f"{cluster['ingest_server_cpu_us_per_event']} / "
                         f"{cluster['ingest_broker_cpu_us_per_event']}", ""))
        rows.append(_row(f"node SIGKILLed -> breach recorded at the kill reaches the webhook, "
                         f"p50 / max (s) over {cluster['failover_rounds']} kills",
                         f"{cluster['breach_after_kill_p50_s']} / "
                         f"{cluster['breach_after_kill_max_s']}", "p99 <= 10"))
    latency = results.get("latency")
    if latency:
        rows.append(_row(f"door event -> notification p50 / p99 (ms), "
                         f"{latency['background_events_per_s']:.0f} events/s background",
                         f"{latency['p50_ms']} / {latency['p99_ms']}", "p99 <= 250"))
    crossing = results.get("crossing")
    if crossing:
        rows.append(_row(f"person crosses -> worker's webhook p50 / p99 (s), agent with the "
                         f"synthetic camera, early exit ({crossing['samples']} exits)",
                         f"{crossing['p50_s']} / {crossing['p99_s']}", "p50 <= 2, p99 <= 3"))
    ack = results.get("ack_link")
    if ack:
        rows.append(_row("one-tap acknowledge link: tap -> incident acknowledged p50 / p99 (ms)",
                         f"{ack['tap_to_acknowledged_p50_ms']} / "
                         f"{ack['tap_to_acknowledged_p99_ms']}", "<= 1,000"))
    devices = results.get("devices")
    if devices:
        tried = max(r["devices"] for r in devices["runs"])
        rows.append(_row(f"connected devices with heartbeats, no loss (largest of the sizes "
                         f"tried, up to {tried:,})",
                         devices["largest_fleet_with_no_loss"], ">= 5,000"))
    analyzer = results.get("analyzer")
    if analyzer:
        for width, height in ((320, 240), (640, 480)):
            runs = [r for r in analyzer["results"] if r["width"] == width]
            if runs:
                low = min(runs, key=lambda r: r["fps"])
                rows.append(_row(
                    f"analysis frames/s, one thread, {width}x{height} (slowest input: "
                    f"{low['input']}; fastest {max(r['fps'] for r in runs):.0f})",
                    f"{low['fps']:.0f}", ">= 1,000 at 320x240"))
    agent = results.get("agent")
    if agent:
        for phase in ("idle", "motion"):
            figures = agent[phase]
            rows.append(_row(f"agent CPU % of one core / RSS MiB, {phase} (synthetic camera "
                             f"{agent['size'][0]}x{agent['size'][1]} at {agent['fps']:.0f} fps)",
                             f"{figures['cpu_percent_mean']} / {figures['rss_mib_mean']}", ""))
    return rows


def _parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in BENCHMARKS)
    listed = "\n".join(f"  {name:<{width}}  {ABOUT[name]}" for name in BENCHMARKS)
    return argparse.ArgumentParser(
        prog="python -m bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run benchmarks (all by default), write bench/results/NAME.json and "
                    "rewrite BENCHMARKS.md. Each starts its own Mosquitto, server and load on "
                    "loopback; run on a quiet machine.",
        epilog=f"benchmarks:\n{listed}\n\nexamples:\n"
               "  python -m bench ingest            run one\n"
               "  python -m bench ingest latency    run these, in this order\n"
               "  python -m bench --table           only rewrite BENCHMARKS.md from "
               "bench/results")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: ``names`` (every benchmark when none is given) and ``table``.
    An unknown name exits with status 2 before anything runs."""
    parser = _parser()
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run (default: all; listed below)")
    parser.add_argument("--table", action="store_true",
                        help="run nothing; rewrite BENCHMARKS.md from the JSON files already "
                             "in bench/results (after running benchmarks one by one)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from "
                     f"{', '.join(BENCHMARKS)})")
    if args.table and args.names:
        parser.error("--table runs nothing: give no benchmark names with it")
    args.names = args.names or ([] if args.table else list(BENCHMARKS))
    return args


def main(argv: list[str]) -> None:
    """Run the benchmarks the command line names (see :func:`parse_args`) and write their
    results; with ``--table`` only rewrite BENCHMARKS.md from bench/results."""
    args = parse_args(argv)
    results: dict[str, Any] = {}
    if args.table:
        for path in sorted(RESULTS.glob("*.json")):
            results[path.stem] = json.loads(path.read_text())
    chosen: list[str] = args.names
    for name in chosen:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            results[name] = BENCHMARKS[name]()
        except Exception as exc:
            print(f"{name} failed: {exc!r}", file=sys.stderr)
            continue
        write_result(name, results[name])
        print(json.dumps(results[name], indent=2)[:2000], f"({time.monotonic() - started:.0f} s)")
    if chosen and not args.table and set(chosen) <= OWN_BLOCK:
        # These rewrote their own marked blocks of BENCHMARKS.md; the rest of the
        # file (other benchmarks' rows, notes kept by hand) stays as it is.
        print(f"wrote {RESULTS} and the {', '.join(chosen)} block(s) of BENCHMARKS.md")
        return
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); raw figures in `bench/results/*.json`.",
        "Each benchmark starts its own Mosquitto (our configuration), server and load on",
        "loopback. Ingest drains the same backlog through a bare `mosquitto_sub` and through",
        "the server; latency is door event to notification received over HTTP (Apprise",
        "`json://`) under background load; devices = every device connected with QoS 1",
        "heartbeats every 10 s and every device's last heartbeat in the database.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Python {info['python']}, {info['mosquitto']}.",
        "",
        *_table(results),
        "",
    ]
    if "frigate" in results:
        from bench.bench_frigate import section as frigate_section

        extra = RESULTS / "frigate_instructions.json"
        lines += [*frigate_section(results["frigate"], json.loads(extra.read_text())
                                   if extra.exists() else None), ""]
    if "corpus" in results:
        from bench.bench_corpus import section

        lines += [*section(results["corpus"]), ""]
    # Observations a table cannot hold (same machine kind on other days, comparisons of
    # commits) are kept by hand in bench/NOTES.md and appended.
    notes = REPO / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    (REPO / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote {REPO / 'BENCHMARKS.md'} and {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
