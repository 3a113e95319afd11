"""The report's within-architecture section and ``within.csv``: each score's share of pairs right
and mean group tau-b with intervals, its gain over the best baseline, the noise ceiling, and the
pre-registered rule's candidates and winner."""

from __future__ import annotations

from transferdet.bench.plots import within_plot
from transferdet.bench.report_data import ReportData
from transferdet.bench.report_tables import interval_text
from transferdet.bench.within_summary import WITHIN_MEASURES


def within_records(data: ReportData) -> list[dict]:
    """within.csv: one row per score, best share first."""
    if data.within is None:
        return []
    records = []
    for s in sorted(data.within.summaries, key=lambda s: -s.measures["pair_share"].value):
        record = {"scope": s.scope, "metric": s.metric, "layer": s.layer, "features": s.features, "pairs": s.pairs}
        for name in WITHIN_MEASURES:
            interval = s.measures[name]
            record.update({name: interval.value, f"{name}_low": interval.low, f"{name}_high": interval.high})
        record.update(
            gain=s.gain.value if s.gain else None,
            gain_low=s.gain.low if s.gain else None,
            gain_high=s.gain.high if s.gain else None,
            against=s.against,
        )
        records.append(record)
    ceiling = data.within.ceiling
    if ceiling:  # trial 0's AP as a ranker of trial 1's: what no score can beat
        record = {"scope": records[0]["scope"] if records else "", "metric": "noise_ceiling", "layer": "-",
                  "features": "trial 0 vs 1", "pairs": data.within.ceiling_pairs}  # fmt: skip
        for name in WITHIN_MEASURES:
            record.update(
                {name: ceiling[name].value, f"{name}_low": ceiling[name].low, f"{name}_high": ceiling[name].high}
            )
        records.append(record | {"gain": None, "gain_low": None, "gain_high": None, "against": None})
    return records


def within_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    header = ["score", "layer", "features", "pairs", "share of pairs right", "mean group τ-b", "gain in share"]
    rows = [
        [r["metric"], r["layer"], r["features"], str(r["pairs"]),
         *(interval_text(s.measures[m]) for m in WITHIN_MEASURES), interval_text(s.gain) if s.gain else "baseline"]
        for r, s in zip(within_records(data), _ordered(data), strict=False)
    ]  # fmt: skip
    return header, rows


def _ordered(data: ReportData) -> list:
    return sorted(data.within.summaries, key=lambda s: -s.measures["pair_share"].value) if data.within else []


def within_section(doc, data: ReportData) -> None:  # noqa: ANN001 - a report Document
    """Write the section (nothing where no architecture has two sources)."""
    if data.within is None or not data.within.summaries:
        return
    doc.heading("Within one architecture (pretrained sources; 90% bootstrap intervals)")
    ceiling = data.within.ceiling
    noise = ", ".join(f"{m} {interval_text(ceiling[m])}" for m in WITHIN_MEASURES if m in ceiling)
    doc.paragraph(
        "Pairs of checkpoints of one architecture on one target; share of them ordered as mean fine-tuned "
        f"{data.target} orders them (a tie counts half) and the mean per-group Kendall τ-b; gain: in share over "
        "the best baseline of this scope (k-NN, linear probe), paired. Noise ceiling (trial 0's AP ranking "
        f"trial 1's, over {data.within.ceiling_pairs} pairs): {noise or 'n/a (one trial)'}."
    )
    doc.table(*within_table(data))
    doc.plot("within", within_plot(data), "share of pairs ordered right within one architecture")
    if data.within.winner is not None:
        w = data.within.winner
        doc.paragraph(
            f"Pre-registered rule (benchmarks/real/README.md): {len(data.within.candidates)} candidates; winner "
            f"{w.metric} on {w.layer}: share {w.share:.3f} (bg0, bg2: {', '.join(f'{v:.3f}' for v in w.shares)}), "
            f"mean group τ-b {w.tau:.3f}. The combined ranker card+{w.metric} joins the pooled tables."
        )
