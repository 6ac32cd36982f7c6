"""The three recipes on real data sets, against the figures published for them.

Runs `recipes/ner.py` on CoNLL-2003, `recipes/sentiment.py` on SST-2 and
`recipes/translation.py` on the Anki/Tatoeba English-Spanish pairs, each as
its own process with the command that reached the figure in README's recipe
table, and writes one JSON: every recipe's own `metrics.json`, the headline
figure beside its goal, the wall time and the machine's conditions (CPU,
flags, load average) before and after.

The data sets are not part of the package and nothing here downloads them;
bring them onto the machine once and pass their paths:

    python benchmarks/real_data.py --conll DIR --sst2 DIR --pairs spa.txt

    --conll DIR    CoNLL-2003 folder: train.txt, valid.txt, test.txt
    --sst2 DIR     GLUE SST-2 folder: train.tsv, dev.tsv
    --pairs FILE   Anki tab-separated pairs (English<TAB>Spanish[<TAB>attribution])

A task whose flag is missing is skipped. `--only ner sentiment` runs a
subset; `--dry-run` prints the commands without running them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from conditions import print_conditions

ROOT = Path(__file__).resolve().parents[1]

# Each task: the recipe, its real-data flag, the arguments of the documented
# run, the goal of issue #17 and how to read the headline figures from the
# recipe's metrics.json.
TASKS = {
    "ner": {
        "recipe": "recipes/ner.py",
        "flag": "--conll",
        "args": (
            "--merge-modes concat --char-encoder cnn --crf --lowercase --units 100 --embed-dim 100 "
            "--char-units 50 --dropout 0.5 --word-dropout 0.3 --learning-rate 2e-3 --lr-schedule linear "
            "--clipnorm 5 --epochs 60 --max-train-minutes 28"
        ).split(),
        "goal": "CoNLL-2003 test entity F1 >= 86 (char encoder + BiLSTM + CRF, no pretrained vectors), "
        "<= 30 min of training",
    },
    "sentiment": {
        "recipe": "recipes/sentiment.py",
        "flag": "--sst2",
        "args": "--units 64 --dropout 0.5 --word2vec --epochs 3 --val-sentences 0".split(),
        "goal": "SST-2 dev accuracy >= 82% (BiLSTM) and >= 78% (pooled encoder), <= 15 min",
    },
    "translation": {
        "recipe": "recipes/translation.py",
        "flag": "--pairs",
        "args": "--attention bahdanau --epochs 20 --max-train-minutes 26".split(),
        "goal": "BLEU on 2,000 held-out pairs, greedy and beam 4, beam >= greedy, <= 30 min",
    },
}


def headline(task: str, metrics: dict) -> dict:
    """The figures README's recipe table shows, read from a recipe's metrics.json."""
    if task == "ner":
        return {
            "valid_f1": metrics["valid_f1"],
            "test_f1": metrics["test_f1"],
            "train_seconds": metrics["train_seconds"],
        }
    if task == "sentiment":
        return {name: model["accuracy"] for name, model in metrics["models"].items()}
    figures = {}
    for attention, row in metrics.items():
        if isinstance(row, dict) and "greedy" in row and "beam" in row:
            for decoding in ("greedy", "beam"):
                for key in ("bleu", "sacrebleu"):
                    if key in row[decoding]:
                        figures[f"{attention} {decoding} {key}"] = row[decoding][key]
            figures[f"{attention} train_seconds"] = row["train_seconds"]
    return figures


def run_task(task: str, data: str, out: Path, dry_run: bool) -> dict:
    spec = TASKS[task]
    task_out = out / task
    command = [
        sys.executable,
        spec["recipe"],
        spec["flag"],
        data,
        "--out",
        str(task_out),
        *spec["args"],
    ]
    print(f"\n== {task}: {shlex.join(command)}", flush=True)
    if dry_run:
        return {"command": shlex.join(command)}
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.time() - started
    metrics = json.loads((task_out / "metrics.json").read_text())
    return {
        "command": shlex.join(["python", *command[1:]]),
        "goal": spec["goal"],
        "headline": headline(task, metrics),
        "wall_seconds": round(wall, 1),
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "metrics": metrics,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conll", help="CoNLL-2003 folder (train.txt, valid.txt, test.txt)")
    parser.add_argument("--sst2", help="GLUE SST-2 folder (train.tsv, dev.tsv)")
    parser.add_argument("--pairs", help="Anki English-Spanish pairs file (spa.txt)")
    parser.add_argument("--only", nargs="+", choices=sorted(TASKS), help="run these tasks only")
    parser.add_argument("--out", default="runs/real_data", help="output folder")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)

    data = {"ner": args.conll, "sentiment": args.sst2, "translation": args.pairs}
    tasks = [t for t in (args.only or TASKS) if data[t]]
    if not tasks:
        parser.error("give at least one of --conll, --sst2, --pairs (the data sets' paths)")
    for task in tasks:
        if not Path(data[task]).exists():
            parser.error(f"{TASKS[task]['flag']} {data[task]}: no such file or folder")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"conditions_before": print_conditions()}
    report["tasks"] = {task: run_task(task, data[task], out, args.dry_run) for task in tasks}
    report["conditions_after"] = print_conditions(label="after")
    if args.dry_run:
        return

    print("\n== figures")
    for task, result in report["tasks"].items():
        print(f"{task} ({result['wall_seconds']:.0f} s wall; goal: {result['goal']})")
        for name, value in result["headline"].items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"  {name}: {shown}")
    path = out / "real_data.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
