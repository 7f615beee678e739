"""Searching a design space under budgets: regularized evolution (Real et al. 2019), or every
configuration when the space is small enough.

Regularized evolution ("aging evolution", E. Real, A. Aggarwal, Y. Huang, Q. V. Le, "Regularized
Evolution for Image Classifier Architecture Search", AAAI 2019, Algorithm 1): a population of
``population`` random configurations; then, repeatedly, ``sample_size`` members drawn at random
compete, the fittest is the parent, its child differs in one dimension (a random other value),
the child joins the population and the *oldest* member leaves it. Here children come in steps of
``batch_size`` (default 8), all of a step's parents chosen from the same population, so that a
step's children are evaluated in parallel and the result is the same whatever the number of
workers. ``generations`` rounds of ``population`` children follow the initial population: at
most ``population * (generations + 1)`` evaluations (a configuration met again is not analysed
again). With ``strategy='auto'``, a discrete space with no more configurations than that is
searched exhaustively instead, which finds the true optimum.

A configuration's fitness: invalid, or over any budget -> it is infeasible (never returned, and it
loses every tournament to a feasible one); otherwise the objective (``params:max``: its params;
``macs:min``: minus its MACs) or the caller's ``fitness(row)`` (a float, higher is better: a quick
training run, a proxy score, a measured latency), called only for feasible configurations.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ArchstatError
from .budget import Budget, parse_budget, parse_objective
from .load import Space, load_space
from .plan import grid_plan
from .rows import METRICS
from .runner import Engine, Task

STRATEGIES = ("auto", "evolution", "exhaustive")
Progress = Callable[[float, float, str], None]


@dataclass
class SearchResult:
    """``best``: the feasible configurations, best first, each once (at most ``top``);
    ``history``: every evaluation in order (``step``, ``generation``, ``parent`` step or -1, the
    row, ``feasible``, ``fitness``); ``strategy``, ``evaluations`` (configurations analysed),
    ``budgets``, ``objective``, ``seed``, ``space``."""

    best: Any
    history: Any
    strategy: str
    evaluations: int
    budgets: list[Budget]
    objective: str
    seed: int
    space: Space = field(repr=False)

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The best configuration's arguments, or None when none met every budget."""
        if self.best.empty:
            return None
        row = self.best.iloc[0]
        return {n: _plain(row[n]) for n in self.space.names}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _key(config: Mapping[str, Any]) -> tuple:
    return tuple((k, type(v).__name__, v) for k, v in config.items())


def _positive(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchstatError(f"{name} must be an integer >= {minimum}, got {value!r}", field=f"--{name.replace('_', '-')}")
    return value


def search(spec: Any, budgets: Iterable[Any] = (), objective: str | None = None, *,
           fitness: Callable[[dict[str, Any]], float] | None = None, population: int = 64,
           sample_size: int | None = None, generations: int = 50, seed: int = 0, strategy: str = "auto",
           batch_size: int = 8, top: int = 10, workers: int = 1, scheduler: Any = None,
           args: Mapping[str, Any] | None = None, space: Mapping[str, Any] | None = None, batch: int = 1,
           dtype: str = "float32", progress: Progress | None = None) -> SearchResult:
    """Search a spec's design space for the fittest configurations within ``budgets``.

    Parameters
    ----------
    spec : zoo name, spec path, mapping or Space (see :func:`archstat.space.load.load_space`).
    budgets : strings such as ``'macs<=400e6'`` (:mod:`archstat.space.budget`); every returned
        configuration meets every one.
    objective : ``'metric:max'`` or ``'metric:min'`` over a metric or a numeric argument; or
    fitness : ``fitness(row) -> float`` (higher is better), called in this process with the
        row's arguments and metrics, for feasible configurations only. Give one of the two.
    population, sample_size, generations, batch_size : of regularized evolution (sample size
        default: a quarter of the population, at least 2).
    seed : decides every draw; the same seed gives the same result.
    strategy : 'auto' (exhaustive when the space is discrete and small enough), 'evolution' or
        'exhaustive'.
    top : how many configurations ``best`` keeps.
    workers, scheduler, args, space, batch, dtype, progress : as :func:`archstat.space.sample`.

    Returns
    -------
    SearchResult
    """

    sp = load_space(spec, args, space=space)
    names = list(METRICS) + [d.name for d in sp.dims if not isinstance(sp.defaults[d.name], (str, bool))]
    budgets = [parse_budget(b, names) for b in ([budgets] if isinstance(budgets, str) else budgets)]
    if fitness is None and objective is None:
        raise ArchstatError("give an objective such as 'params:max' (or a fitness function)", field="--objective")
    if fitness is not None and not callable(fitness):
        raise ArchstatError(f"fitness must be a function of a row, got {type(fitness).__name__}", field="fitness")
    metric, sense = parse_objective(objective, names) if objective is not None else (None, "max")
    label = objective if fitness is None else getattr(fitness, "__name__", "fitness")
    population = _positive(population, "population", 2)
    generations = _positive(generations, "generations", 0)
    batch_size = _positive(batch_size, "batch_size")
    top = _positive(top, "top")
    sample_size = _positive(sample_size if sample_size is not None else max(2, population // 4), "sample_size")
    if sample_size > population:
        raise ArchstatError(f"the sample size {sample_size} is larger than the population {population}",
                            field="--sample-size")
    if strategy not in STRATEGIES:
        raise ArchstatError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})", field="--strategy")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArchstatError(f"the seed must be a non-negative integer, got {seed!r}", field="--seed")
    limit = population * (generations + 1)
    if strategy == "exhaustive" and sp.size is None:
        raise ArchstatError("an exhaustive search needs a discrete space; "
                            + ", ".join(d.name for d in sp.dims if d.continuous) + " are continuous",
                            file=sp.label, field="--strategy", hint="use the evolution strategy")
    exhaustive = strategy == "exhaustive" or (strategy == "auto" and sp.size is not None and sp.size <= limit)

    cache: dict[tuple, dict[str, Any]] = {}
    history: list[dict[str, Any]] = []
    analysed = 0

    def score(row: dict[str, Any]) -> tuple[bool, float]:
        if row["error"] or not all(b.met(row) for b in budgets):
            return False, -math.inf
        if fitness is not None:
            value = fitness(dict(row))
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ArchstatError(f"the fitness function returned {value!r}, not a number", field="fitness") from None
            return (not math.isnan(value)), (value if not math.isnan(value) else -math.inf)
        value = row[metric]
        return True, float(value) if sense == "max" else -float(value)

    def evaluate_all(configs: Sequence[dict[str, Any]], total: int) -> list[dict[str, Any]]:
        nonlocal analysed
        todo = {}
        for c in configs:
            if _key(c) not in cache and _key(c) not in todo:
                todo[_key(c)] = c
        items = [(k, c) for k, c in enumerate(todo.values())]
        got: list[dict[str, Any]] = []

        def on_rows(rows):
            got.extend(rows)
            if progress is not None:
                progress(analysed + len(got), total, "searching")

        engine.run(Task(sp, None, batch, dtype), items, on_rows)
        for row in sorted(got, key=lambda r: r["index"]):
            config = {n: row[n] for n in sp.names}
            feasible, fit = score(row)
            cache[_key(config)] = {**row, "feasible": feasible, "fitness": fit}
        analysed += len(got)
        return [cache[_key(c)] for c in configs]

    def record(rows, generation, parents):
        for row, parent in zip(rows, parents):
            history.append({**row, "step": len(history), "generation": generation, "parent": parent})

    with Engine(workers, scheduler) as engine:
        used = _loop(sp, exhaustive, evaluate_all, record, history, population, generations, batch_size,
                     sample_size, seed, limit)
    return _result(sp, history, used, analysed, budgets, label, seed, top)


def _loop(sp, exhaustive, evaluate_all, record, history, population, generations, batch_size, sample_size,
          seed, limit) -> str:
    """The search itself: every configuration, or regularized evolution; returns the strategy."""
    import numpy as np

    if exhaustive:
        plan = grid_plan(sp)
        configs = [plan.config(i) for i in range(plan.n)]
        record(evaluate_all(configs, plan.n), 0, [-1] * plan.n)
        return "exhaustive"
    else:
        rng = np.random.default_rng(seed)
        initial = [{d.name: d.draw(rng) for d in sp.dims} for _ in range(population)]
        rows = evaluate_all(initial, limit)
        record(rows, 0, [-1] * population)
        alive: deque[int] = deque(range(population))       # steps of the living members, oldest first
        mutable = [d for d in sp.dims if d.continuous or len(d) > 1]
        for generation in range(1, generations + 1):
            made = 0
            while made < population:
                n = min(batch_size, population - made)
                members = list(alive)
                children, parents = [], []
                for _ in range(n):
                    picks = rng.choice(len(members), size=sample_size, replace=False)
                    parent = max((members[int(p)] for p in picks), key=lambda s: (history[s]["fitness"], s))
                    child = {k: history[parent][k] for k in sp.names}
                    if mutable:
                        d = mutable[int(rng.integers(len(mutable)))]
                        child[d.name] = d.mutate(child[d.name], rng)
                    children.append(child)
                    parents.append(parent)
                start = len(history)
                record(evaluate_all(children, limit), generation, parents)
                for step in range(start, len(history)):
                    alive.append(step)
                    alive.popleft()
                made += n
    return "evolution"


def _result(sp: Space, history: list[dict[str, Any]], strategy: str, analysed: int, budgets: list[Budget],
            objective: str, seed: int, top: int) -> SearchResult:
    import pandas as pd

    from .sweep import frame_of

    frame = frame_of([{**r, "index": r["step"]} for r in history], sp).drop(columns="index")
    extra = pd.DataFrame({"step": [r["step"] for r in history], "generation": [r["generation"] for r in history],
                          "parent": [r["parent"] for r in history], "feasible": [r["feasible"] for r in history],
                          "fitness": [r["fitness"] for r in history]})
    hist = pd.concat([extra[["step", "generation", "parent"]], frame, extra[["feasible", "fitness"]]], axis=1)
    hist = hist.astype({"step": "int64", "generation": "int64", "parent": "int64", "feasible": "bool",
                        "fitness": "float64"})
    good = hist[hist["feasible"]]
    good = good.drop_duplicates(subset=list(sp.names), keep="first")
    best = good.sort_values(["fitness", "step"], ascending=[False, True], kind="stable").head(top)
    best = best.reset_index(drop=True)
    return SearchResult(best=best, history=hist, strategy=strategy, evaluations=analysed, budgets=budgets,
                        objective=objective, seed=seed, space=sp)
