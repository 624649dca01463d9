"""Dollars per million images: measured worker speed x simulated fleet use x EC2 prices, beside
managed labeling APIs' list prices.

    .venv/bin/python bench/cost.py [--worker LABEL=PATH ...] [--rate LABEL=IMAGES_PER_S/VCPUS ...]
                                   [--basis cpu|measured] [--write]

Speed per vCPU comes from bench/worker.py's JSON (default: every bench/results/worker-*.json,
labelled by the name after "worker-"; else bench/results/worker.json), or from --rate (e.g.
litert=53.2/2: 53.2 images/s on 2 vCPUs). With --basis cpu (the default) a vCPU does
1000 / worker_cpu_ms_per_image images/s: a node whose vCPUs are all kept busy by workers, and a
figure that a shared machine's load inflates far less than the wall-clock rate. --basis measured
takes the one worker's images/s instead. A node of V vCPUs is assumed to do V times that.

Fleet use: each trace in scaling/traces/, and six hours of an even stream of 1M and of 10M
images a month, is replayed by `manage.py simulate_scaling --json` with that node speed; the
billed instance-minutes over the trace's images give its $/M. "Busy" is a node that never idles.

Prints the tables, writes bench/results/cost.json, and with --write puts them into
bench/README.md and README.md between the "cost" markers.
"""
import argparse
import io
import json
import os
import random
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TRACES = ("steady", "bursty", "spike", "idle")
# Besides the shipped traces: an even stream of N million images a month, seeded random arrivals
# for long enough that the cold start at its beginning weighs little.
MONTHLY_MILLIONS = (1, 10)
STREAM_SECONDS = 6 * 3600
SECONDS_PER_MONTH = 30 * 24 * 3600
PRICES_AS_OF = "2025 list prices (us-east-1, Linux), as the author knows them; not re-checked online"
# (instance type, architecture, vCPUs, on-demand $/h, spot $/h, what a vCPU is)
INSTANCES = (
    ("c7i.large", "x86_64", 2, 0.08925, 0.040, "Sapphire Rapids, 1 core / 2 threads"),
    ("c7a.large", "x86_64", 2, 0.10264, 0.045, "EPYC Genoa (Zen 4, as here), 2 cores"),
    ("c7g.large", "arm64", 2, 0.0725, 0.031, "Graviton3, 2 cores"),
    ("c6i.xlarge", "x86_64", 4, 0.17, 0.070, "Ice Lake, 2 cores / 4 threads"),
    ("m7i.large", "x86_64", 2, 0.1008, 0.042, "Sapphire Rapids, 1 core / 2 threads, 8 GiB"),
)
SPOT_NOTE = "spot: a typical us-east-1 price in 2025; it moves by the hour and by zone"
ARM64_NOTE = ("arm64 (c7g) is an estimate from x86 figures: ai-edge-litert 2.3.0 has manylinux_2_27_aarch64 "
              "wheels, but tensorflow-cpu 2.21.0 has none (tensorflow 2.21.0 has), so an arm64 worker needs "
              "that requirement changed, or a model built elsewhere.")
# Managed label detection, $ per 1,000 images by monthly volume tier.
MANAGED_APIS = (
    ("Amazon Rekognition DetectLabels", "first 1M/month $1.00, next 4M $0.80, next 30M $0.60, over 35M $0.25",
     1.00, "2025 list price (us-east-1), as the author knows it"),
    ("Google Cloud Vision LABEL_DETECTION", "first 1,000/month free, to 5M $1.50, over 5M $1.00",
     1.50, "2025 list price; tiers match a stored copy of cloud.google.com/vision/pricing"),
)
# Requests per image in our own design: the original and the thumbnail are PUT, the worker GETs
# the original; about 3 SQS requests (send, receive, delete) per message of IMAGES_PER_MESSAGE.
S3_PUT_PER_1000, S3_GET_PER_1000, SQS_PER_MILLION = 0.005, 0.0004, 0.40
S3_PUTS_PER_IMAGE, S3_GETS_PER_IMAGE, SQS_REQUESTS_PER_MESSAGE = 2, 1, 3
BEGIN, END = "<!-- cost:begin (bench/cost.py --write) -->", "<!-- cost:end -->"


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsite.settings")
    import django

    django.setup()


def worker_results(pairs):
    """LABEL=PATH pairs, or the bench/worker.py results found in bench/results/."""
    if pairs:
        return [tuple(pair.split("=", 1)) for pair in pairs]
    found = sorted(RESULTS.glob("worker-*.json"))
    if found:
        return [(path.stem.removeprefix("worker-"), str(path)) for path in found]
    default = RESULTS / "worker.json"
    return [("worker", str(default))] if default.exists() else []


def speeds_per_vcpu(workers, rates, basis):
    """Label -> (images/s per vCPU, where the figure comes from)."""
    speeds = {}
    for label, path in worker_results(workers):
        result = json.loads(Path(path).read_text())
        name = Path(path).resolve().relative_to(ROOT) if Path(path).resolve().is_relative_to(ROOT) else path
        if basis == "cpu":
            speeds[label] = (1000 / result["worker_cpu_ms_per_image"],
                             f"`{name}`: {result['worker_cpu_ms_per_image']} ms of worker CPU per image")
        else:
            speeds[label] = (result["worker_images_per_second"] / result["cores"],
                             f"`{name}`: {result['worker_images_per_second']} images/s on {result['cores']} vCPUs")
    for rate in rates:
        label, _, value = rate.partition("=")
        images, _, vcpus = value.partition("/")
        speeds[label] = (float(images) / float(vcpus or 1), f"--rate {rate}")
    if not speeds:
        sys.exit("No worker speed: run bench/worker.py (or pass --rate LABEL=IMAGES_PER_S/VCPUS).")
    return dict(sorted(speeds.items(), key=lambda item: item[1][0]))  # slowest first


def trace_paths(scratch):
    """Trace name -> CSV path: the shipped traces, then the even monthly streams."""
    paths = {trace: ROOT / "scaling" / "traces" / f"{trace}.csv" for trace in TRACES}
    for millions in MONTHLY_MILLIONS:
        rng, rate, moment, rows = random.Random(millions), millions * 1_000_000 / SECONDS_PER_MONTH, 0.0, []
        while (moment := moment + rng.expovariate(rate)) < STREAM_SECONDS:
            rows.append(f"{moment:.3f},1")
        path = Path(scratch) / f"{millions}M_a_month.csv"
        path.write_text("t,images\n" + "\n".join(rows) + "\n")
        paths[path.stem] = path
    return paths


def simulate(path, seconds_per_image):
    """The simulator's result for the imgsite policy on one trace, and the trace's image count."""
    from django.core.management import call_command

    from scaling.simulate import load_trace

    output = io.StringIO()
    call_command("simulate_scaling", str(path), "--policy", "imgsite", "--json",
                 "--seconds-per-image", f"{seconds_per_image:.6f}", stdout=output)
    result = json.loads(output.getvalue().strip().splitlines()[-1])
    return result, sum(images for _, images in load_trace(path))


def per_million(dollars, images):
    return dollars / images * 1_000_000


def requests_per_million():
    """S3 and SQS request charges per million images, the same whoever classifies."""
    from django.conf import settings

    s3 = 1000 * (S3_PUTS_PER_IMAGE * S3_PUT_PER_1000 + S3_GETS_PER_IMAGE * S3_GET_PER_1000)
    sqs = SQS_PER_MILLION * SQS_REQUESTS_PER_MESSAGE / settings.IMAGES_PER_MESSAGE
    return s3, sqs


def costs(speeds, traces):
    rows, simulations = [], {}
    for label, (per_vcpu, _source) in speeds.items():
        for name, arch, vcpus, on_demand, spot, _cpu in INSTANCES:
            node_rate = per_vcpu * vcpus
            key = (label, vcpus)
            if key not in simulations:
                simulations[key] = {trace: simulate(path, 1 / node_rate) for trace, path in traces.items()}
            row = {"runtime": label, "instance": name, "arch": arch, "vcpus": vcpus, "node_images_per_s": node_rate,
                   "busy_on_demand": per_million(on_demand / 3600, node_rate),
                   "busy_spot": per_million(spot / 3600, node_rate)}
            for trace, (result, images) in simulations[key].items():
                row[f"{trace}_on_demand"] = per_million(result["instance_minutes"] / 60 * on_demand, images)
                row[f"{trace}_utilization"] = result["utilization"]
                row[f"{trace}_instance_minutes"] = result["instance_minutes"]
            rows.append(row)
    return rows


def trace_names(rows):
    return [key.removesuffix("_on_demand") for key in rows[0] if key.endswith("_on_demand")
            and not key.startswith("busy")]


def money(value):
    return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"


def full_table(rows, speeds, basis):
    traces = trace_names(rows)
    lines = [
        f"Node speed basis: `--basis {basis}`; per vCPU: "
        + "; ".join(f"{label} {per_vcpu:.1f} images/s ({source})" for label, (per_vcpu, source) in speeds.items())
        + ". $ per million images; in brackets, the share of billed node time spent classifying.",
        "",
        "| runtime | instance | images/s per node | busy, on-demand | busy, spot | "
        + " | ".join(f"{trace.replace('_', ' ')}" for trace in traces) + " |",
        "|---|---|---|---|---|" + "---|" * len(traces),
    ]
    for row in rows:
        cells = " | ".join(f"{money(row[f'{trace}_on_demand'])} ({row[f'{trace}_utilization']:.1%})"
                           for trace in traces)
        lines.append(f"| {row['runtime']} | {row['instance']} | {row['node_images_per_s']:.0f} | "
                     f"{money(row['busy_on_demand'])} | {money(row['busy_spot'])} | {cells} |")
    lines += ["", "| instance | arch | vCPUs | what a vCPU is | on-demand $/h | spot $/h |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {arch} | {vcpus} | {cpu} | {on_demand} | {spot} |"
              for name, arch, vcpus, on_demand, spot, cpu in INSTANCES]
    lines += ["", f"Prices: {PRICES_AS_OF}; {SPOT_NOTE}. {ARM64_NOTE}", ""]
    lines += managed_lines()
    return "\n".join(lines)


def managed_lines():
    s3, sqs = requests_per_million()
    lines = ["| managed API | $ per million images (first tier) | tiers, per 1,000 images | price as of |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {money(per_1000 * 1000)} | {tiers} | {as_of} |"
              for name, tiers, per_1000, as_of in MANAGED_APIS]
    lines += ["", f"Either way the images are stored: S3 requests cost {money(s3)} and SQS {money(sqs)} per million "
              f"images ({S3_PUTS_PER_IMAGE} PUTs and {S3_GETS_PER_IMAGE} GET per image, "
              f"{SQS_REQUESTS_PER_MESSAGE} SQS requests per message), on top of the compute above."]
    return lines


def short_table(rows):
    by_key = {(row["runtime"], row["instance"]): row for row in rows}
    lines = ["| classifier | always busy (on-demand / spot) | 10M a month, even | 1M a month, even | bursty trace |",
             "|---|---|---|---|---|"]
    for runtime in dict.fromkeys(row["runtime"] for row in rows):
        for instance in ("c7i.large", "c7g.large"):
            row = by_key.get((runtime, instance))
            if row:
                lines.append(f"| {runtime} on {instance} | {money(row['busy_on_demand'])} / {money(row['busy_spot'])} "
                             f"| {money(row['10M_a_month_on_demand'])} | {money(row['1M_a_month_on_demand'])} "
                             f"| {money(row['bursty_on_demand'])} |")
    lines += [f"| {name} | {money(per_1000 * 1000)} (first tier) | | | |" for name, _, per_1000, _ in MANAGED_APIS]
    return "\n".join(lines)


def replace_between_markers(path, text):
    content = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        sys.exit(f"{path} has no {BEGIN} ... {END} section to replace")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="append", default=[], metavar="LABEL=PATH",
                        help="a bench/worker.py JSON result (repeatable)")
    parser.add_argument("--rate", action="append", default=[], metavar="LABEL=IMAGES_PER_S/VCPUS",
                        help="a measured worker speed instead of a JSON result (repeatable)")
    parser.add_argument("--basis", choices=("cpu", "measured"), default="cpu")
    parser.add_argument("--write", action="store_true", help="update bench/README.md and README.md")
    args = parser.parse_args()
    setup_django()
    speeds = speeds_per_vcpu(args.worker, args.rate, args.basis)
    with tempfile.TemporaryDirectory() as scratch:
        rows = costs(speeds, trace_paths(scratch))
    full, short = full_table(rows, speeds, args.basis), short_table(rows)
    print(full, "\n", short, sep="\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps({
        "basis": args.basis, "speeds_per_vcpu": speeds, "rows": rows, "instances": INSTANCES,
        "prices_as_of": PRICES_AS_OF, "managed_apis": MANAGED_APIS}, indent=2))
    print(f"wrote {RESULTS / 'cost.json'}")
    if args.write:
        replace_between_markers(ROOT / "bench" / "README.md", full)
        replace_between_markers(ROOT / "README.md", short)
        print("updated bench/README.md and README.md")


if __name__ == "__main__":
    main()
