"""Sum py-spy's collapsed stacks (bench/worker.py --profile) into where a worker's samples go.

    .venv/bin/python bench/profile_summary.py STACKS.txt [--top 25]

Prints the share of samples by part of a worker's work (the model, the model input, the
thumbnail, decoding, S3, SQS, the database, Celery itself), then the functions whose own samples
are largest.
"""
import argparse
import re
from collections import Counter

# A sample counts for the innermost of these frames on its stack ("function (path:line)").
PARTS = {
    "model (LiteRT)": r"^(\w+\.)?(invoke|run|predict|softmax) \((ai_edge_litert|classifier/inference)",
    "model input (crop, resize, array)": r"^(\w+\.)?preprocess \(classifier/efficientnet",
    "thumbnail": r"^(\w+\.)?make_thumbnail \(",
    "decode": r"^(\w+\.)?open_image \(classifier/decoding",
    "S3 get/put": r"^(\w+\.)?(read|write) \(imgsite/storage",
    "SQS (visibility, dispatch sends)": r"^(\w+\.)?(hide_message|send_message|dispatch) \(classifier/tasks",
    "database (claim, leases, finish)": r"django/db/",
    "Celery's own (receive, ack, trace)": r"(kombu|celery)/",
}


def load(path):
    stacks = Counter()
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if count.isdigit():
            stacks[stack] += int(count)
    return stacks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stacks = load(args.stacks)
    total = sum(stacks.values())
    print(f"{total} samples")
    print("\nshare of samples by part (the innermost part on each stack):")
    parts = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")[::-1]
        parts[next((part for frame in frames for part, pattern in PARTS.items() if re.search(pattern, frame)),
                   "other")] += count
    for part, count in parts.most_common():
        print(f"  {count / total:6.1%}  {part}")
    own = Counter()
    for stack, count in stacks.items():
        own[stack.split(";")[-1]] += count
    print(f"\ntop {args.top} functions by their own samples:")
    for frame, count in own.most_common(args.top):
        print(f"  {count / total:6.1%}  {frame[:150]}")


if __name__ == "__main__":
    main()
