"""select's regret figure is readable with one race point: the cost axis spans 0 to fine-tuning all (not
a sliver around the point), the regret axis holds every interval and level with a margin, and the
legend sits outside the axes, within the figure."""

from __future__ import annotations

from transferdet.bench.bootstrap import Interval
from transferdet.bench.regret import RACE, RANDOM, RegretRow
from transferdet.bench.select_report import regret_figure


def test_one_race_point_sits_inside_axes_that_span_the_data_and_the_legend_is_outside() -> None:
    rows = [RegretRow(0.3, RACE, 10, 0.257, Interval(0.019, 0.011, 0.038), None),
            RegretRow(0.3, "card top-1", 10, 0.0, Interval(0.022, 0.018, 0.038), Interval(-0.003, -0.017, 0.01)),
            RegretRow(0.3, RANDOM, 10, 0.0, Interval(0.061, 0.04, 0.08), Interval(-0.04, -0.06, -0.02))]  # fmt: skip
    figure = regret_figure(rows)
    axes = figure.axes[0]
    low, high = axes.get_xlim()
    assert low <= 0.0 and high >= 1.0  # the whole cost range, the point well inside it
    bottom, top = axes.get_ylim()
    assert bottom <= 0.0 and top > 0.061 * 1.05  # the highest level with a margin
    figure.tight_layout()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend, frame = axes.get_legend().get_window_extent(renderer), axes.get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # beside the points, not over them
    assert legend.x1 <= figure.bbox.x1 + 1  # and not cut off
