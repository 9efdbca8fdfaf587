"""Our numbers beside the paper's: the paper's Tables 1-3, tables as CSV + markdown, the replication table.

    from lmm_r1.report import paper_reference, beside_paper, replication_table, write_table
    paper_reference()                               # results/paper_reference.csv, PAPER.md §7 exactly
    beside_paper([{"model": "mgt_percereason", "benchmark": "mathvista", "value": 61.0}])

``results/paper_reference.csv`` is long-format: one row per (table, model, benchmark) with the printed value (a
percentage for Tables 1-2, a shaped reward for Table 3) and a note where the paper's own numbers disagree
(FRE-Multi's MM Avg is printed 38.71 but its columns average 39.59).

On CPU the kit evaluates toy tasks, not the paper's benchmarks, so the tiny profile compares *analogues*:
the text task (arith) against Text Avg, the perception task against MM Avg, geometry against Table 2's MathVision
geometry column, Sokoban's reward against Sokoban-Global. Absolute differences mean little there; the gains over
the base model (``ours_gain`` beside ``paper_gain``) are what the toy replication checks.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from lmm_r1.results import REPO_ROOT

PAPER_REFERENCE = REPO_ROOT / "results" / "paper_reference.csv"

# Our run names -> the paper's model keys (results/paper_reference.csv).
MODEL_ANALOGUES = {
    "base": "baseline", "baseline": "baseline", "fre_text": "fre_text", "fre_multi": "fre_multi",
    "mgt_percept": "mgt_percereason", "mgt_geometry": "mgt_geo", "mgt_sokoban": "mgt_sokoban",
    "direct_rl_geometry": "direct_rl_geo", "direct_rl_sokoban": "direct_rl_sokoban",
}
# The tiny profile's held-out sets -> the paper column each stands in for.
TOY_ANALOGUES = {"arith": "text_avg", "percept": "mm_avg", "geometry": "mathvision_geometry",
                 "sokoban_reward": "sokoban_global"}
# Stages of the replication table, in the paper's order: base, FRE, then MGT and Direct-RL per domain.
STAGES = ("base", "fre_text", "fre_multi", "mgt_percept", "mgt_geometry", "mgt_sokoban",
          "direct_rl_percept", "direct_rl_geometry", "direct_rl_sokoban")


def paper_reference(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The paper's Tables 1-3 as rows (``value`` a float, ``printed`` the string as in the paper)."""
    path = Path(path or PAPER_REFERENCE)
    if not path.is_file():
        raise FileNotFoundError(f"no paper reference table at {path}")
    rows = []
    with path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                rows.append({**row, "table": int(row["table"]), "printed": row["value"], "value": float(row["value"])})
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{i}: malformed row {row!r}: {e}") from None
    return rows


def paper_value(model: str, benchmark: str, rows: list[dict] | None = None) -> float | None:
    """The paper's number for (model key, benchmark), from the first table that has it."""
    for row in rows or paper_reference():
        if row["model_key"] == model and row["benchmark"] == benchmark:
            return row["value"]
    return None


def beside_paper(ours: Iterable[dict], analogues: dict[str, str] | None = None,
                 models: dict[str, str] | None = None, reference: list[dict] | None = None) -> list[dict]:
    """Our numbers beside the paper's, for every row the paper has.

    ``ours``: dicts with ``model``, ``benchmark`` and ``value`` (in the paper's unit: % for accuracies).
    ``analogues`` maps our benchmark names to the paper's (identity when None: the paper profile);
    ``models`` maps our model names to the paper's keys (``MODEL_ANALOGUES`` by default). Each output row
    has ``ours``, ``paper``, ``diff`` (ours - paper) and both gains over the base model where it exists.
    """
    ref = reference or paper_reference()
    models = MODEL_ANALOGUES if models is None else models
    ours = list(ours)
    base_ours = {r["benchmark"]: r["value"] for r in ours if models.get(r["model"], r["model"]) == "baseline"}
    out = []
    for r in ours:
        p_model = models.get(r["model"], r["model"])
        if analogues is not None and r["benchmark"] not in analogues:
            continue
        p_bench = analogues[r["benchmark"]] if analogues is not None else r["benchmark"]
        paper = paper_value(p_model, p_bench, ref)
        if paper is None:
            continue
        paper_base = paper_value("baseline", p_bench, ref)
        base = base_ours.get(r["benchmark"])
        out.append({
            "model": r["model"], "paper_model": p_model, "benchmark": r["benchmark"], "paper_benchmark": p_bench,
            "ours": r["value"], "paper": paper, "diff": r["value"] - paper,
            "ours_gain": None if base is None else r["value"] - base,
            "paper_gain": None if paper_base is None else paper - paper_base,
        })
    return out


def escape_cell(text: str) -> str:
    r"""Text for one markdown table cell that renders as written in JupyterLab and on GitHub: pipes escaped (they
    split cells, inside code spans too), newlines folded, and outside code spans ``<``/``>`` (the HTML sanitizer
    eats ``<think>``), ``&`` and ``$`` (MathJax takes ``$...$`` as maths) escaped. Inside a code span (```...```)
    the text is shown literally already.

    >>> escape_cell("✓ `<think> $2$ </think>` and <answer> $3$")
    '✓ `<think> $2$ </think>` and &lt;answer&gt; \\$3\\$'
    """
    out = []
    for part in re.split(r"(`[^`]*`)", str(text).replace("\n", " ")):
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(part.replace("|", "\\|"))
        else:
            out.append(part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("$", "\\$")
                       .replace("|", "\\|"))
    return "".join(out)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape_cell(value)


def markdown(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 2) -> str:
    """A GitHub markdown table (floats to ``digits`` places; missing values blank; text escaped by
    :func:`escape_cell`, column names too)."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(escape_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c), digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict], stem: str | Path, title: str | None = None,
                columns: Sequence[str] | None = None, note: str | None = None,
                md_columns: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (``columns``, default all) and ``<stem>.md`` (``md_columns``, default the same,
    with an optional title and note); return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, md_columns or columns)
    text = (f"# {title}\n\n" if title else "") + table + (f"\n{note}\n" if note else "")
    md_path.write_text(text)
    return csv_path, md_path


def stage_and_seed(run_name: str) -> tuple[str, int | None]:
    """``"mgt_percept_seed3"`` -> ``("mgt_percept", 3)``; ``"base"`` -> ``("base", None)``."""
    head, sep, tail = run_name.rpartition("_seed")
    if sep and tail.isdigit():
        return head, int(tail)
    return run_name, None


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value: no spread measured) of per-seed results."""
    import statistics

    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def replication_table(scores: Iterable[dict], columns: Sequence[str], scale: float = 100.0) -> list[dict]:
    """Mean and spread over seeds per stage: the toy-scale replication table.

    ``scores``: dicts with ``run`` (e.g. ``fre_text_seed1``; ``base`` for the base model), ``benchmark`` and
    ``value`` (a fraction for accuracies; ``sokoban_reward`` is a reward and is not scaled). Each cell is
    ``"mean ± std"`` over seeds (the numbers also in ``<column>_mean`` and ``<column>_std``); ``seeds`` says how
    many runs each stage has.
    """
    by_stage: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, set] = {}
    for r in scores:
        stage, seed = stage_and_seed(r["run"])
        by_stage.setdefault(stage, {}).setdefault(r["benchmark"], []).append(r["value"])
        seeds.setdefault(stage, set()).add(seed)
    order = [s for s in STAGES if s in by_stage] + sorted(s for s in by_stage if s not in STAGES)
    rows = []
    for stage in order:
        row: dict[str, Any] = {"stage": stage, "seeds": len(seeds[stage])}
        for col in columns:
            values = by_stage[stage].get(col)
            if not values:
                row[col] = ""
                continue
            k = 1.0 if col.endswith("reward") or col.endswith("tokens") else scale
            m, s = mean_sd([v * k for v in values])
            digits = 2 if col.endswith("reward") else 1  # rewards are small numbers; accuracies in %
            row[col] = f"{m:.{digits}f} ± {s:.{digits}f}"
            row[f"{col}_mean"], row[f"{col}_std"] = m, s
        rows.append(row)
    return rows


def stage_means(scores: Iterable[dict], key: str = "value", scale: float = 100.0) -> list[dict]:
    """Mean of ``key`` over seeds per (stage, benchmark), as ``beside_paper`` rows (``model`` = the stage).

    Accuracies are scaled to % (the paper's unit); ``*_reward`` and token counts are not."""
    cells: dict[tuple[str, str], list[float]] = {}
    for r in scores:
        if r.get(key) is not None:
            cells.setdefault((r["stage"], r["benchmark"]), []).append(r[key])
    out = []
    for (stage, bench), values in cells.items():
        k = 1.0 if key != "value" or bench.endswith("reward") else scale
        m, s = mean_sd([v * k for v in values])
        out.append({"model": stage, "benchmark": bench, "value": m, "std": s, "seeds": len(values)})
    return out


def length_table(scores: Iterable[dict], benchmarks: Sequence[str]) -> list[dict]:
    """Mean completion length (tokens) per stage and benchmark, with the change from the base model.

    The paper (§7) reports text RL growing responses (~600 to ~800 tokens) and multimodal RL shrinking them
    (~150 to under 80); ``<benchmark>_change`` is the same comparison at toy scale."""
    means = {(r["model"], r["benchmark"]): r["value"] for r in stage_means(
        [s for s in scores if not s["benchmark"].endswith("_reward")], key="completion_tokens")}
    stages = [s for s in STAGES if any(m == s for m, _ in means)] + sorted(
        {m for m, _ in means} - set(STAGES))
    rows = []
    for stage in stages:
        row: dict[str, Any] = {"stage": stage}
        for b in benchmarks:
            v, base = means.get((stage, b)), means.get(("base", b))
            row[b] = v
            row[f"{b}_change"] = None if v is None or base is None or stage == "base" else v - base
        rows.append(row)
    return rows


def plot_scores(scores: Iterable[dict], benchmarks: Sequence[str], title: str = "Held-out accuracy by stage"):
    """Grouped bars: mean accuracy (%) per benchmark for each stage, error bars = std over seeds."""
    import matplotlib.pyplot as plt

    means = {(r["model"], r["benchmark"]): r for r in stage_means(scores)}
    stages = [s for s in STAGES if any(m == s for m, _ in means)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(benchmarks)), 3.5))
    width = 0.8 / max(len(stages), 1)
    for k, stage in enumerate(stages):
        xs = [i + (k - (len(stages) - 1) / 2) * width for i in range(len(benchmarks))]
        cells = [means.get((stage, b)) for b in benchmarks]
        ax.bar(xs, [c["value"] if c else 0 for c in cells], width, yerr=[c["std"] if c else 0 for c in cells],
               label=stage, capsize=2)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_gains(rows: Sequence[dict], title: str = "Gain over the base model: ours and the paper's"):
    """From ``beside_paper`` rows, one bar per (model, benchmark): our gain over base in one panel, the paper's in
    another, each on its own axis. At toy scale the units differ (a toy task's accuracy points against a paper
    benchmark's), so one shared axis would invite comparing sizes; compare signs and order."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows
            if r["ours_gain"] is not None and r["paper_gain"] is not None and r["paper_model"] != "baseline"]
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.9 * len(rows)), 5.5), sharex=True)
    xs = list(range(len(rows)))
    for ax, key, label, color in ((axes[0], "ours_gain", "ours", "tab:blue"), (axes[1], "paper_gain", "the paper", "tab:orange")):
        ax.bar(xs, [r[key] for r in rows], 0.6, color=color)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel("points over base")
        ax.set_title(f"{label}: " + ("on the row's benchmark (tiny profile: the toy task standing in)" if key == "ours_gain"
                                      else "on its column (Tables 1-3)"), fontsize=9)
    axes[1].set_xticks(xs, [f"{r['model']}\n{r['benchmark']}" for r in rows], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def example_completions(runs: Sequence[Any], benchmark: str, k: int = 3, max_chars: int = 160,
                        one_per_stage: bool = True) -> list[dict]:
    """The first ``k`` items of ``benchmark`` with each run's completion (clipped) and whether it was right.

    ``one_per_stage``: only the first run of each stage (its lowest seed), so the table stays readable."""
    runs = [r for r in runs if benchmark in r.records]
    if one_per_stage:
        first: dict[str, Any] = {}
        for r in sorted(runs, key=lambda r: stage_and_seed(r.name)[1] or 0):
            first.setdefault(stage_and_seed(r.name)[0], r)
        runs = [r for r in runs if r in first.values()]
    if not runs:
        return []
    rows = []
    for i, rec in enumerate(runs[0].records[benchmark][:k]):
        row = {"id": rec.id, "gold": rec.gold}
        for run in runs:
            other = run.records[benchmark][i]
            text = other.completion if len(other.completion) <= max_chars else other.completion[:max_chars] + "…"
            row[run.name] = f"{'✓' if other.correct else '✗'} {text}"
        rows.append(row)
    return rows


def pivot(scores: Iterable[dict], key: str = "accuracy", index: str = "run") -> list[dict]:
    """One row per ``index`` value (run or stage), one column per benchmark, cells = ``key``."""
    rows: dict[str, dict] = {}
    for r in scores:
        if r.get(key) is not None:
            rows.setdefault(r[index], {index: r[index]})[r["benchmark"]] = r[key]
    return list(rows.values())


# Table 1's averages, recomputed from our per-benchmark numbers (the paper profile).
PAPER_AVERAGES = {"text_avg": ("math500", "gpqa_diamond"),
                  "mm_avg": ("olympiadbench", "mathvision", "mathverse", "mmstar", "mathvista")}


def add_paper_averages(means: Sequence[dict]) -> list[dict]:
    """``stage_means`` rows plus Text Avg and MM Avg per model where all of their columns were measured."""
    out = list(means)
    by_model: dict[str, dict[str, float]] = {}
    for r in means:
        by_model.setdefault(r["model"], {})[r["benchmark"]] = r["value"]
    for model, values in by_model.items():
        for avg, parts in PAPER_AVERAGES.items():
            if all(p in values for p in parts):
                out.append({"model": model, "benchmark": avg, "value": sum(values[p] for p in parts) / len(parts)})
    return out


def stage_metrics(scores: Iterable[dict]) -> dict[str, float]:
    """Run-record metrics of an evaluation notebook: ``eval/<benchmark>/<metric>/<stage>`` (mean over seeds) and
    ``eval/<benchmark>/accuracy_std/<stage>``; accuracies as fractions, as in single-run records."""
    scores = list(scores)
    out: dict[str, float] = {}
    for r in stage_means(scores, scale=1.0):
        metric = "reward" if r["benchmark"].endswith("_reward") else "accuracy"
        bench = r["benchmark"].removesuffix("_reward")
        out[f"eval/{bench}/{metric}/{r['model']}"] = r["value"]
        out[f"eval/{bench}/{metric}_std/{r['model']}"] = r["std"]
    for r in stage_means([s for s in scores if not s["benchmark"].endswith("_reward")], key="completion_tokens"):
        out[f"eval/{r['benchmark']}/completion_tokens/{r['model']}"] = r["value"]
    return out


# The paper's numbers for each comparison the toy replication makes, keyed by the claim texts notebooks 02-03
# write: (benchmark, reference model, arm model) in results/paper_reference.csv (PAPER.md §7, checked verbatim by
# tests/test_report.py), or a text where the CSV has no such row. The toy's rows stand beside these, not for them.
PAPER_COMPARISONS: dict[str, tuple[str, str, str] | str] = {
    "FRE-Text raises text accuracy": ("text_avg", "baseline", "fre_text"),
    "text RL grows responses": "§7: ~600 -> ~800 tokens",
    "FRE-Text raises image accuracy without an image": ("mm_avg", "baseline", "fre_text"),
    "FRE-Multi helps the image task more than FRE-Text": ("mm_avg", "fre_text", "fre_multi"),
    "FRE-Multi is worse on text than FRE-Text": ("text_avg", "fre_multi", "fre_text"),
    "MGT on percept raises image accuracy over FRE-Text": ("mm_avg", "fre_text", "mgt_percereason"),
    "FRE -> MGT beats Direct-RL on percept at the same budget": "no Direct-RL arm for PerceReason",
    "MGT on geometry raises image accuracy over FRE-Text": ("mathvision_geometry", "fre_text", "mgt_geo"),
    "FRE -> MGT beats Direct-RL on geometry at the same budget": ("mathvision_geometry", "direct_rl_geo", "mgt_geo"),
    "MGT on sokoban raises image accuracy over FRE-Text": ("sokoban_global", "fre_text", "mgt_sokoban"),
    "FRE -> MGT beats Direct-RL on sokoban at the same budget": ("sokoban_global", "direct_rl_sokoban", "mgt_sokoban"),
}


def paper_figure(claim: str, rows: list[dict] | None = None) -> str:
    """What the paper measured for a toy claim: ``"Table 1, MM Avg: 36.12 -> 39.35"`` (reference -> arm, as
    printed), or ``""`` for a claim the paper does not make (a continuation row of the claim above)."""
    spec = PAPER_COMPARISONS.get(claim, "")
    if isinstance(spec, str):
        return spec
    benchmark, reference, arm = spec
    rows = rows or paper_reference()
    found = {r["model_key"]: r for r in rows if r["benchmark"] == benchmark and r["model_key"] in (reference, arm)}
    if set(found) != {reference, arm}:
        raise ValueError(f"claim {claim!r}: results/paper_reference.csv lacks {benchmark} for "
                         f"{sorted({reference, arm} - set(found))}")
    ref_note, arm_note = found[reference].get("note") or "", found[arm].get("note") or ""
    shared = ref_note if ref_note == arm_note else ""  # one note for both values goes at the end, once

    def value(key, note):
        return found[key]["printed"] + (f" ({note})" if note and not shared else "")

    return (f"Table {found[arm]['table']}, {found[arm]['column']}: {value(reference, ref_note)} -> "
            f"{value(arm, arm_note)}" + (f" ({shared})" if shared else ""))


TIE = 1e-9  # differences below this are ties (the values are accuracies, token counts, rewards)


def claim(claim: str, measure: str, arm: Sequence[float], reference: Sequence[float] | float, *,
          arm_label: str, reference_label: str, digits: int = 3, paper: str | None = None) -> dict[str, Any]:
    """One paper comparison at toy scale, whatever it shows: ``arm`` (one value per training seed) against
    ``reference`` (one value per seed, paired by seed, or a single number such as the base model's).

    The verdict is plain: "yes, every seed" when the arm is ahead on every seed, "not clearly: k of n seeds" when
    it is ahead on average but not on every seed, "no" otherwise. Ties count as not ahead. ``paper``: what the
    paper measured for the claim (default: ``paper_figure(claim)``).
    """
    arm = [float(v) for v in arm]
    refs = [float(v) for v in reference] if isinstance(reference, Sequence) else [float(reference)] * len(arm)
    if len(refs) != len(arm) or not arm:
        raise ValueError(f"{claim!r}: {len(arm)} arm values against {len(refs)} reference values")
    deltas = [a - r for a, r in zip(arm, refs)]
    m, sd = mean_sd(deltas)
    # ahead means ahead by more than float noise: 0.4 - 0.3 and 0.4 - 0.5 average to +3e-17, a tie
    wins = sum(d > TIE for d in deltas)
    verdict = "yes, every seed" if wins == len(deltas) else f"not clearly: {wins} of {len(deltas)} seeds" if m > TIE \
        else "no"
    ref_m = mean_sd(refs)[0]
    return {"claim": claim, "paper": paper_figure(claim) if paper is None else paper,
            "measure": measure, "arm": arm_label, "reference": reference_label,
            "reference value": round(ref_m, digits), "arm value": f"{mean_sd(arm)[0]:.{digits}f} ± {mean_sd(arm)[1]:.{digits}f}",
            "change": f"{m:+.{digits}f} ± {sd:.{digits}f}",
            "per seed": ", ".join(f"{d:+.{digits}f}" for d in deltas), "verdict": verdict}


def findings(claims: Sequence[dict]) -> str:
    """"What this run found", written from a claims table (``claim`` rows): one line per comparison, every number
    taken from the rows, so the text cannot disagree with the table above it."""
    lines, current = [], ""
    for row in claims:
        current = row["claim"] or current
        lines.append(f"- **{current}** ({row['measure']}): {row['arm']} {row['arm value']} against "
                     f"{row['reference']} {row['reference value']}, change {row['change']} (per seed "
                     f"{row['per seed']}): **{row['verdict']}**." + (f" The paper: {row['paper']}." if row["paper"] else ""))
    return "\n".join(lines) if lines else "No comparison was run (no claim rows)."


def gain_findings(beside: Sequence[dict], digits: int = 1) -> str:
    """The gains over the base model per checkpoint, ours beside the paper's, from ``beside_paper`` rows: one line
    per model, every number from the rows."""
    by_model: dict[str, list[str]] = {}
    for r in beside:
        if r["ours_gain"] is None or r["model"] in ("base", "baseline"):
            continue
        paper = "" if r["paper_gain"] is None else f" (paper {r['paper_gain']:+.{digits}f} on {r['paper_benchmark']})"
        by_model.setdefault(r["model"], []).append(f"{r['benchmark']} {r['ours_gain']:+.{digits}f}{paper}")
    if not by_model:
        return "No checkpoint beside a base model with a paper value: no gains to report."
    return "\n".join(f"- **{m}** over the base model: " + "; ".join(parts) + "." for m, parts in by_model.items())
