"""``select`` as a benchmark job: one race (:func:`~transferdet.select.flow.select`) over one
target's sources at one budget and seed, planned from a config's ``select`` section
(:mod:`~transferdet.bench.select_rule`) and run by the bench runner like any job (locally, or on
Ray, where races run side by side; retried by it). The race trains in this process, its state in
its run folders, so a race killed and run again continues where it stopped and ends with the same
pick. Its result is the race's summary, kept in the store's ``races`` table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer, model_validator

from transferdet.bench.definitions import DataRef, data_ref, make_job
from transferdet.bench.store import Job
from transferdet.devices import default_device
from transferdet.models.model_card import ModelEntry

if TYPE_CHECKING:
    from transferdet.bench.config import BenchConfig
    from transferdet.select.flow import SelectSettings


class SelectDefinition(BaseModel):
    """One race: the target, its candidates (the sources, as the config lists them), the protocol,
    the budget, eta and seed, the screen's settings, and the race's folder."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["select"] = "select"
    data: DataRef
    candidates: list[ModelEntry]
    detector: str
    recipe: str
    recipe_overrides: dict[str, Any]
    budget: float
    eta: int
    seed: int
    device: str
    image_size: int
    max_images: int | None
    plugins: list[str] = []
    out: str
    race: Literal["halving", "tolerant"] = "halving"  # (left at their defaults, out of the race's identity)
    tolerance: float = 0.0
    prefer: Literal["card", "speed", "size"] = "card"

    @model_validator(mode="before")
    @classmethod
    def _stored_meaning(cls, value: Any) -> Any:
        """A candidate stored without ``transfer`` (every race before whole transfer existed) raced
        its body: it keeps that meaning."""
        if isinstance(value, dict) and isinstance(value.get("candidates"), list):
            value = {**value, "candidates": [_with_transfer(c) for c in value["candidates"]]}
        return value

    @field_serializer("candidates")
    def _candidates(self, candidates: list[ModelEntry]) -> list[dict[str, Any]]:
        """Body, the old meaning, stays out of the dump (and so of the race's identity)."""
        dumped = [c.model_dump(mode="json") for c in candidates]
        return [{k: v for k, v in c.items() if not (k == "transfer" and v == "body")} for c in dumped]

    def data_args(self):  # noqa: ANN201 - a DataArgs
        """The race's data options, as its DataRef keeps them."""
        from transferdet.data.options import DataArgs

        data = self.data
        return DataArgs(data.format, data.split, data.read_options(), data.on_bad_box)

    def settings(self, cache_dir: Path) -> SelectSettings:
        from transferdet.select.flow import SelectSettings
        from transferdet.train.recipes import load_recipe
        from transferdet.transfer.rank import RankSettings

        device = default_device(self.device)
        screen = RankSettings(image_size=self.image_size, max_images=self.max_images, seed=self.seed, device=device)
        return SelectSettings(
            load_recipe(self.recipe, config_file=self.recipe_overrides), self.detector, self.budget, self.eta,
            seed=self.seed, device=device, rank=screen, data_args=self.data_args(), plugins=list(self.plugins),
            entries={e.name: e for e in self.candidates}, cache_dir=cache_dir, race=self.race,
            tolerance=self.tolerance, prefer=self.prefer,
        )  # fmt: skip


def _with_transfer(candidate: Any) -> Any:
    if isinstance(candidate, dict) and candidate.get("transfer") is None:
        return {**candidate, "transfer": "body"}
    return candidate


def _resolved(entry: ModelEntry) -> ModelEntry:
    """``entry`` with its transfer stated: whole for a detector source unless it says body."""
    return entry.model_copy(update={"transfer": "whole" if entry.whole_detector() else "body"})


def select_jobs(config: BenchConfig, device: str) -> list[Job]:
    """One race per target, budget and seed of ``config.select`` (targets in config order)."""
    rule = config.select
    targets = [d for d in config.datasets if rule.targets is None or d.name in rule.targets]
    jobs = []
    for dataset in targets:
        for budget in rule.budgets:
            for seed in rule.seeds:
                definition = SelectDefinition(
                    data=data_ref(dataset),
                    candidates=[_resolved(e) for e in config.models_for(dataset.name)], detector=config.detector,
                    recipe=config.recipe,
                    recipe_overrides=config.recipe_overrides, budget=budget, eta=rule.eta, seed=seed, device=device,
                    image_size=config.image_size, max_images=config.max_images, plugins=list(config.plugins),
                    out=str(rule.folder / dataset.name / f"budget{budget:g}-seed{seed}"), race=rule.race,
                    tolerance=rule.tolerance, prefer=rule.prefer,
                )  # fmt: skip
                jobs.append(make_job(definition, dataset.name, f"select@{budget:g}", seed, config.base))
    return jobs


def run_select_job(definition: SelectDefinition, bench_dir: Path) -> dict[str, Any]:
    """Run (or continue) one race in ``bench_dir``/``out``; ``{"race": its summary}``."""
    from transferdet.select.flow import select

    names = [e.name for e in definition.candidates]
    settings = definition.settings(bench_dir / "feature-cache")
    summary = select(Path(definition.data.path), names, settings, bench_dir / definition.out)
    return {"race": summary}
