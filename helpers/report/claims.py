"""Claims: the figures a lesson states that depend on the machine (speed ratios, memory peaks).

A lesson checks two kinds of things. **Invariants** (order, coverage, X/y alignment, the copy a
trap makes, a cache's hit rate) hold on every machine: they are plain ``assert``s. **Claims** are
figures measured here that another machine may not reproduce: "a memmap trains at >= 0.85x the
in-memory speed" holds on 2 CPUs without a GPU, and a GPU makes the in-memory step faster while
the loader stays as fast as it was. A claim goes through :func:`expect`:

- in the test run (``TUTORIAL_CLAIMS=strict``, set by ``run.sh test``) a claim that does not hold
  raises :class:`ClaimError` (an ``AssertionError``) in its own cell, as an assert would;
- anywhere else it prints one line -- what the lesson states, what was measured here, the likely
  reason -- and the lesson goes on.

Every claim is kept (a re-run of a cell replaces its entry); the lesson ends with
:func:`finish`, which prints the table of its claims and stores them in its results file as
``"claims": [{"id", "text", "op", "threshold", "measured", "min", "max", "rounds", "held"}]``.
A figure that this platform cannot measure (anonymous memory under psutil's RSS fallback) is
recorded with ``held: None`` and says so instead of failing.
"""

from __future__ import annotations

import json
import operator
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

ENV = "TUTORIAL_CLAIMS"
"""``strict``: a claim that does not hold raises (the test run); anything else: it is reported."""

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
}

NEEDS = ("anon",)
"""What a claim can need from the platform: ``anon`` = anonymous memory split from file pages."""


class ClaimError(AssertionError):
    """A claim did not hold in a strict run (the test run)."""


@dataclass(frozen=True)
class Claim:
    """One stated figure, as measured here."""

    id: str
    text: str
    """What the lesson states, in words (e.g. "a memmap PyDataset trains at the in-memory speed")."""
    op: str
    threshold: float
    measured: float | None
    """The median of the rounds (or the single measurement); None if not measurable here."""
    min: float | None
    max: float | None
    rounds: int
    held: bool | None
    """None: not measurable on this platform."""
    unit: str = ""
    reason: str = ""
    """The likely reason when it does not hold on another machine."""

    def line(self) -> str:
        """The one line :func:`expect` prints."""
        stated = f"{self.op} {_fmt(self.threshold, self.unit)}"
        if self.held is None:
            return f"claim not measurable here: {self.text} ({stated}): {self.reason}"
        spread = (f" ({_fmt(self.min, self.unit)}-{_fmt(self.max, self.unit)}, median of {self.rounds} rounds)"
                  if self.rounds > 1 else "")
        got = f"measured {_fmt(self.measured, self.unit)}{spread}"
        if self.held:
            return f"claim holds: {self.text}: {got}, stated {stated}"
        why = f" Likely: {self.reason}." if self.reason else ""
        return (f"CLAIM DIFFERS HERE: {self.text}: {got}, the lesson states {stated} "
                f"(measured on 2 CPUs without a GPU).{why} The lesson goes on.")


_claims: dict[str, Claim] = {}


def strict() -> bool:
    """True in the test run: a claim that does not hold raises."""
    return os.environ.get(ENV, "").strip().lower() == "strict"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text}{unit}" if unit in ("x", "%") else f"{text} {unit}".rstrip()


def measurable(needs: str | None) -> str | None:
    """None if this platform measures what a claim needs, else why not."""
    if needs is None:
        return None
    if needs not in NEEDS:
        raise ValueError(f"needs={needs!r}: one of {NEEDS}")
    from helpers.lab.memory import has_anon_split

    if has_anon_split():
        return None
    return "this platform gives only RSS, which counts a memory-mapped file's pages (no anonymous/file split)"


def expect(claim_id: str, text: str, value: float | Sequence[float] | None, op: str, threshold: float, *,
           unit: str = "", reason: str = "", needs: str | None = None, missing: str = "") -> None:
    """Check one machine-dependent figure; print one line; keep it for :func:`finish` (and
    :func:`kept`; nothing is returned, so a cell that ends with a claim shows only its line).

    ``value`` is one measurement or the list of interleaved rounds (their median is compared, their
    min-max is shown). ``op`` is one of ``>=``, ``>``, ``<=``, ``<``. ``reason``: the likely reason
    when another machine differs (e.g. "a GPU makes the in-memory step faster"). ``needs="anon"``:
    the figure is anonymous memory, not measurable under psutil's RSS fallback. ``value=None``: not
    measured in this run, ``missing`` says why (e.g. the run it needs was killed); the claim is then
    "not measurable", as under the RSS fallback. In a strict run
    (:func:`strict`) a claim that does not hold raises :class:`ClaimError` after it is kept.
    """
    if op not in OPS:
        raise ValueError(f"claim {claim_id!r}: op {op!r} is not one of {list(OPS)}")
    if not text:
        raise ValueError(f"claim {claim_id!r}: say what the lesson states")
    why_not = measurable(needs)
    if why_not is None and value is None:
        why_not = missing or "not measured in this run"
    if why_not is not None:
        claim = Claim(claim_id, text, op, float(threshold), None, None, None, 0, None, unit, why_not)
    else:
        rounds = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
        if not rounds:
            raise ValueError(f"claim {claim_id!r}: no measurement")
        median = statistics.median(rounds)
        held = OPS[op](median, float(threshold))
        claim = Claim(claim_id, text, op, float(threshold), median, min(rounds), max(rounds), len(rounds),
                      held, unit, reason)
    _claims[claim_id] = claim
    print(claim.line())
    if claim.held is False and strict():
        raise ClaimError(claim.line())


def kept() -> list[Claim]:
    """The claims checked so far in this process, in the order first checked."""
    return list(_claims.values())


def reset() -> None:
    """Forget every claim (tests; a lesson starts with none)."""
    _claims.clear()


def table(claims: list[Claim] | None = None) -> str:
    """A plain-text table of the claims: held / differs here / not measurable."""
    claims = kept() if claims is None else claims
    if not claims:
        return "no machine-dependent claims in this lesson"
    status = {True: "holds", False: "DIFFERS HERE", None: "not measurable"}
    rows = [(c.id, status[c.held], f"{c.op} {_fmt(c.threshold, c.unit)}",
             _fmt(c.measured, c.unit) + (f" ({_fmt(c.min, c.unit)}-{_fmt(c.max, c.unit)})" if c.rounds > 1 else ""))
            for c in claims]
    head = ("claim", "here", "stated", "measured")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    differs = sum(c.held is False for c in claims)
    lines.append(f"{len(claims)} claims: {sum(c.held is True for c in claims)} hold, {differs} differ here, "
                 f"{sum(c.held is None for c in claims)} not measurable")
    return "\n".join(lines)


def as_records(claims: list[Claim] | None = None) -> list[dict[str, Any]]:
    """The claims as the results file stores them."""
    keys = ("id", "text", "op", "threshold", "measured", "min", "max", "rounds", "held")
    return [{k: asdict(c)[k] for k in keys} for c in (kept() if claims is None else claims)]


LOG = "claims-log.jsonl"
"""``results/claims-log.jsonl``: one line per finished lesson run (every scale, every environment),
appended, never rewritten; :func:`spreads` turns it into ``tests/claim_spreads.json``."""


def environment() -> dict[str, Any]:
    """The facts a claim's figure depends on: versions, CPUs (their number and model), start method."""
    import multiprocessing
    import platform
    import sys

    from helpers.lab.machine import cpu_model

    env: dict[str, Any] = {"python": platform.python_version(), "cpus": len(os.sched_getaffinity(0))
                           if hasattr(os, "sched_getaffinity") else os.cpu_count(), "cpu": cpu_model(),
                           "start_method": multiprocessing.get_start_method(allow_none=True)}
    for name in ("tensorflow", "keras", "numpy"):
        module = sys.modules.get(name)
        env[name] = getattr(module, "__version__", None)
    return env


def finish(notebook: str) -> None:
    """Print the lesson's claims table, store the claims in its results file (created with no
    records if the lesson records none; the last line printed names it) and append them to the log
    of runs (:data:`LOG`). Call it in the lesson's last code cell: it returns nothing, so the cell
    shows only what it prints."""
    import time

    from helpers.config import get_scale, results_dir, write_atomic
    from helpers.report import results

    print(table())
    scale = get_scale()
    stem = Path(notebook).stem
    path = results_dir(scale) / f"{stem}.json"
    if path.exists():
        payload = json.loads(path.read_text())
    else:
        payload = {"schema": results.SCHEMA, "notebook": stem, "scale": scale.name, "records": []}
    payload["claims"] = results.clean(as_records())
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"notebook": stem, "scale": scale.name, "strict": strict(), "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "env": environment(), "claims": payload["claims"]}
    with open(path.parent.parent / LOG, "a") as log:
        log.write(json.dumps(line) + "\n")
    write_atomic(path, json.dumps(payload, indent=1) + "\n")
    print(f"claims stored in {path.parent.parent.name}/{path.parent.name}/{path.name}")


def spreads(logs: Sequence[Path], scale: str = "ci", previous: dict[str, Any] | None = None,
            drop: Sequence[str] = ()) -> dict[str, Any]:
    """What every claim measured over the runs logged in ``logs`` at ``scale``: for each
    ``notebook/id``, its stated ``op``/``threshold`` (the latest) and one entry per run (median,
    min, max of its rounds, and the environment). At the ci scale only test runs count (strict:
    nothing else ran beside them); at another scale every run does. ``previous`` (an earlier
    result of this function) keeps the runs recorded before, whose logs may be gone; a run
    already there (the same figures, time and environment) is not added twice. ``drop``: the
    ``notebook/id`` of claims whose measurement changed (or that are gone): their runs, recorded
    before or in ``logs``, measured something else and are left out; runs logged later count again."""
    unknown = [key for key in drop if "/" not in key]
    if unknown:
        raise ValueError(f"drop takes notebook/id keys, e.g. '05_tf_data/overtake-happens': {unknown}")
    out: dict[str, Any] = json.loads(json.dumps(previous)) if previous else {}
    for key in drop:
        out.pop(key, None)
    for log in logs:
        for text in Path(log).read_text().splitlines():
            run = json.loads(text)
            if run["scale"] != scale or (scale == "ci" and not run["strict"]):
                continue
            for c in run["claims"]:
                if c["held"] is None or f"{run['notebook']}/{c['id']}" in drop:
                    continue
                entry = out.setdefault(f"{run['notebook']}/{c['id']}", {"runs": []})
                entry.update(op=c["op"], threshold=c["threshold"], text=c["text"])
                record = {"measured": c["measured"], "min": c["min"], "max": c["max"], "at": run["at"],
                          "env": run["env"]}
                if record not in entry["runs"]:
                    entry["runs"].append(record)
    return dict(sorted(out.items()))


def inside_spread(entry: dict[str, Any]) -> bool:
    """True if a claim's threshold lies within what its runs measured (their rounds' min-max
    included): a threshold that one more run could cross."""
    lows = [r["min"] if r["min"] is not None else r["measured"] for r in entry["runs"]]
    highs = [r["max"] if r["max"] is not None else r["measured"] for r in entry["runs"]]
    return min(lows) <= entry["threshold"] <= max(highs)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m helpers.report.claims LOG... [-o tests/claim_spreads.json] [--add] [--drop NOTEBOOK/ID]...``:
    merge logged runs."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("tests/claim_spreads.json"))
    parser.add_argument("--scale", default="ci")
    parser.add_argument("--add", action="store_true", help="keep the runs already in --out and add these")
    parser.add_argument("--drop", action="append", default=[], metavar="NOTEBOOK/ID",
                        help="a claim whose measurement changed or that is gone: leave its runs out (repeatable)")
    args = parser.parse_args(argv)
    previous = json.loads(args.out.read_text()) if args.add and args.out.exists() else None
    merged = spreads(args.logs, args.scale, previous, drop=args.drop)
    args.out.write_text(json.dumps(merged, indent=1) + "\n")
    inside = [k for k, v in merged.items() if inside_spread(v)]
    print(f"{len(merged)} claims from {len(args.logs)} logs -> {args.out}; threshold inside the spread: "
          f"{inside or 'none'}")


if __name__ == "__main__":
    main()
