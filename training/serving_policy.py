"""How online learning reaches serving: the online line serves, batch versions
challenge it in shadow, and live labeled traffic decides.

- **The online line follows.** While an online version is champion, each new online
  version becomes champion as soon as it is registered (:func:`follow_online`), so
  scorers serve the newest online state at their next reload (every 2 s by default).
  A shadow launch of an online version follows the line the same way.
- **Batch versions challenge in shadow.** While the online line serves, a new batch
  version is launched as the shadow (:func:`decide`) instead of being judged on the
  holdout, which the online line has learned from. Against a batch champion the
  holdout decides (:func:`training.evaluate`), as for any two versions that did not
  learn from it.
- **A drift ends a batch champion.** A drift the online learner detects after a batch
  champion's training window ended means the world it learned has changed: :func:`decide`
  (run by the retrain the drift asks for) hands serving back to the online line at once,
  recorded as a rollback, and the new batch version challenges it in shadow.
- **Live traffic judges.** :func:`judge_live` compares the serving and the shadow
  predictions of the same events whose labels have arrived, over the newest
  ``window`` of event time; the shadow is promoted when it is better by ``margin``
  over at least ``min_labeled`` predictions and errs less on them by at least
  ``significance`` standard errors (a paired comparison, event by event), so that
  noise does not hand serving to a batch version that cannot follow the next change.
  A promoted batch version gets the online line as its shadow, so when its margin
  stops holding the online line takes over again, recorded as a rollback.

Every move is an alias or launch change in the model registry (who, when, why) and
every judgment a row of ``models/decisions``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import statistics
from dataclasses import dataclass

import polars as pl

from lake import Lake
from training.evaluation import Decision, evaluate, gain
from training.model_registry import Launch, ModelRegistry
from training.release import CHAMPION, launch
from training.scoring import labeled_predictions, score_predictions
from training.specs import ModelSpec

__all__ = ["LiveJudgment", "decide", "follow_online", "judge_live", "standard_errors"]

log = logging.getLogger(__name__)

POLICY = "serving policy"  # who the registry records for the moves made here
WINDOW = dt.timedelta(hours=2)
MIN_LABELED = 30
SIGNIFICANCE = 2.0  # standard errors of the paired per-event difference a win needs


def standard_errors(serving: list[float], shadow: list[float]) -> float:
    """How many standard errors of the mean the per-event difference ``serving - shadow``
    is above zero (a paired t statistic); positive when the shadow errs less.

    >>> round(standard_errors([3.0, 2.0, 4.0, 3.0], [1.0, 1.0, 2.0, 2.0]), 2)
    5.2
    >>> standard_errors([1.0, 2.0], [1.0, 2.0])
    0.0
    """
    diff = [a - b for a, b in zip(serving, shadow, strict=True)]
    if not diff:
        return 0.0
    mean = statistics.fmean(diff)
    spread = statistics.stdev(diff) if len(diff) > 1 else 0.0
    if spread == 0.0:
        return math.copysign(math.inf, mean) if mean else 0.0
    return mean / (spread / math.sqrt(len(diff)))


def _kinds(registry: ModelRegistry, name: str) -> dict[int | None, str]:
    """Version -> kind (``online``, ``batch``) of every version of ``name``: one read."""
    return dict(registry.versions(name).select("version", "kind").iter_rows())


def follow_online(registry: ModelRegistry, name: str, version: int) -> list[str]:
    """After online ``version`` of ``name`` is registered: move the champion to it if an
    online version is champion, and the shadow launch if it shadows an online version.
    Returns what moved (``"champion"``, ``"shadow"``).

    >>> follow_online(registry, "eta", 42)  # doctest: +SKIP
    ['champion']
    """
    moved, kinds = [], _kinds(registry, name)
    champion = registry.alias(name, CHAMPION)
    if champion not in (None, version) and kinds.get(champion) == "online":
        registry.set_alias(name, CHAMPION, version, reason="the online line", by=POLICY)
        moved.append(CHAMPION)
    shadow = registry.launch(name)
    if (
        shadow.mode == "shadow"
        and shadow.challenger != version
        and kinds.get(shadow.challenger) == "online"
    ):
        launch(registry, name, "shadow", challenger=version, by=POLICY, reason="the online line")
        moved.append("shadow")
    return moved


@dataclass(frozen=True)
class LiveJudgment:
    """Serving against shadow on the same labeled events of the newest ``window``."""

    champion: int
    challenger: int
    metric: str
    labeled: int
    champion_score: float
    challenger_score: float
    promoted: bool
    reason: str
    standard_errors: float = 0.0  # how surely the challenger errs less, per event


def judge_live(
    lake: Lake,
    spec: ModelSpec,
    *,
    window: dt.timedelta = WINDOW,
    margin: float = 0.0,
    min_labeled: int = MIN_LABELED,
    significance: float = SIGNIFICANCE,
    apply: bool = True,
) -> LiveJudgment | None:
    """Judge the current shadow launch of ``spec.name`` on live traffic; with ``apply``,
    promote it (and record the decision) when it wins: better by ``margin`` and, per
    event, erring less by at least ``significance`` standard errors (noise does not flip
    what serves). None: no shadow, or too few labeled predictions of both roles yet.

    >>> judge_live(lake, eta, apply=False)  # doctest: +SKIP
    LiveJudgment(champion=41, challenger=12, metric='MAE', labeled=80, ...)
    """
    registry = ModelRegistry(lake)
    current = registry.launch(spec.name)
    champion = registry.alias(spec.name, CHAMPION)
    if current.mode != "shadow" or current.challenger is None or champion is None:
        return None
    kinds = _kinds(registry, spec.name)
    rows = _both_roles(lake, spec, window, _line(kinds, champion), _line(kinds, current.challenger))
    if rows is None:
        return None
    serving, shadow = (rows.filter(pl.col("role") == r) for r in ("serving", "shadow"))
    if shadow.height < min_labeled:
        return None
    metric = spec.make_metric()
    name = type(metric).__name__
    cp_score, cp_errors = score_predictions(spec, serving)
    ch_score, ch_errors = score_predictions(spec, shadow)  # the same events, in one order
    better = gain(metric, ch_score, cp_score)
    errs_less = standard_errors(cp_errors, ch_errors)
    promoted = better > 0 and better >= margin and errs_less >= significance
    online_wins = kinds.get(current.challenger) == "online"
    what = "the online line" if online_wins else f"v{current.challenger}"
    reason = (
        f"live {name} of {what} {ch_score:.4f} vs v{champion} {cp_score:.4f} on "
        f"{shadow.height} labeled events: {'better' if better > 0 else 'not better'} by "
        f"{abs(better):.4f} ({'meets' if better >= margin else 'below'} the margin {margin}), "
        f"errs less by {errs_less:.1f} standard errors "
        f"({'meets' if errs_less >= significance else 'below'} the {significance:g} needed)"
    )
    judgment = LiveJudgment(
        champion, current.challenger, name, shadow.height, cp_score, ch_score, promoted, reason,
        standard_errors=errs_less,
    )  # fmt: skip
    if apply and promoted:
        _promote(registry, spec.name, current, champion, online_wins, judgment, kinds)
    return judgment


def _line(kinds: dict[int | None, str], version: int) -> list[int]:
    """The versions that stand for ``version`` in a comparison: every online version for
    an online one (the line), else the version itself."""
    if kinds.get(version) != "online":
        return [version]
    return [v for v, kind in kinds.items() if kind == "online" and v is not None]


def _both_roles(
    lake: Lake, spec: ModelSpec, window: dt.timedelta, serving: list[int], shadow: list[int]
) -> pl.DataFrame | None:
    """Labeled predictions of the ``serving`` versions and of the ``shadow`` versions, on
    the events both scored, in the newest ``window`` of event time of the shadow's."""
    labeled = labeled_predictions(lake, spec.name, spec.feature_set.name)
    if labeled is None:
        return None
    labeled = labeled.filter(
        ((pl.col("role") == "serving") & pl.col("model_version").is_in(serving))
        | ((pl.col("role") == "shadow") & pl.col("model_version").is_in(shadow))
    )
    shadow_rows = labeled.filter(pl.col("role") == "shadow")
    newest = shadow_rows.select(pl.col("event_time").max()).collect().item()
    if newest is None:
        return None
    recent = labeled.filter(
        (pl.col("event_time") > newest - window) & pl.col("role").is_in(["serving", "shadow"])
    )
    keys = ["input_topic", "input_partition", "input_offset"]
    both = recent.group_by(keys).agg(pl.col("role").n_unique().alias("roles"))
    return (
        recent.join(both.filter(pl.col("roles") == 2), on=keys)
        .unique([*keys, "role"], keep="first")
        .sort(["event_time", *keys])  # both roles' rows in one order
        .collect()
    )


def _promote(
    registry: ModelRegistry,
    name: str,
    current: Launch,
    champion: int,
    online_wins: bool,
    judgment: LiveJudgment,
    kinds: dict[int | None, str],
) -> None:
    reason, metric = judgment.reason, judgment.metric
    assert current.challenger is not None
    if online_wins:  # the online line takes over from a batch version: a rollback to it
        newest = max(v for v, k in kinds.items() if k == "online" and v)
        _back_to_online(registry, name, newest, reason)
    else:  # a batch version takes over; the online line keeps challenging it
        registry.set_alias(name, CHAMPION, current.challenger, reason=reason, by=POLICY)
        launch(registry, name, "shadow", challenger=champion, by=POLICY,
               reason=f"the online line challenges v{current.challenger}")  # fmt: skip
    registry.record_decision(
        name=name,
        challenger=current.challenger,
        champion=champion,
        metric=metric,
        challenger_score=judgment.challenger_score,
        champion_score=judgment.champion_score,
        margin=None,
        holdout_rows=0,
        promoted=True,
        reason=reason,
    )
    log.info("%s: %s", name, reason)


def _back_to_online(registry: ModelRegistry, name: str, version: int, reason: str) -> None:
    """Online ``version`` serves again, alone: a rollback from a batch champion."""
    registry.set_alias(name, CHAMPION, version, reason=f"rollback to the online line: {reason}",
                       by=POLICY)  # fmt: skip
    launch(registry, name, "none", by=POLICY, reason="the online line serves again")


def _drift_after(
    registry: ModelRegistry, name: str, versions: pl.DataFrame, version: int
) -> dt.datetime | None:
    """Event time of the first drift detected after ``version``'s training window ended
    (None: none, or the version records no window); ``versions``: the model's."""
    row = versions.filter(pl.col("version") == version)
    end = row["event_time_to"][0] if row.height else None
    if end is None:
        return None
    later = registry.drift(name).filter(pl.col("event_time") > end)
    return later["event_time"][0] if later.height else None


def _end_on_drift(
    registry: ModelRegistry, spec: ModelSpec, versions: pl.DataFrame, champion: int, online: int
) -> Decision | None:
    """Roll batch ``champion`` back to online ``online`` if a drift came after its
    training window; the decision, or None."""
    drifted = _drift_after(registry, spec.name, versions, champion)
    if drifted is None:
        return None
    metric = type(spec.make_metric()).__name__
    reason = (
        f"drift detected at {drifted:%Y-%m-%d %H:%M} (event time), after v{champion} was trained"
    )
    _back_to_online(registry, spec.name, online, reason)
    registry.record_decision(
        name=spec.name, challenger=online, champion=champion, metric=metric,
        challenger_score=None, champion_score=None, margin=None, holdout_rows=0,
        promoted=True, reason=f"rollback to the online line: {reason}",
    )  # fmt: skip
    log.info("%s: rollback to the online line: %s", spec.name, reason)
    return Decision(online, champion, metric, float("nan"), None, 0, True, reason)


def decide(
    lake: Lake, spec: ModelSpec, *, holdout_days: float = 1.0, margin: float = 0.0
) -> list[Decision | LiveJudgment]:
    """What the champion asset does after a retrain or when live traffic has spoken.

    Until a champion is named the newest version serves, which is the online line once
    there is one, so the online line becomes the first champion (a batch version alone
    is named champion). A batch champion trained before a detected drift is rolled back
    to the online line. Then a new batch version is launched as the shadow while the
    online line serves, or judged on the holdout against a batch champion, which then
    gets the online line as its shadow; then :func:`judge_live`.

    >>> [d.reason for d in decide(lake, eta, holdout_days=0.5)]  # doctest: +SKIP
    ["launched as the online line's shadow: live traffic judges it"]
    """
    registry = ModelRegistry(lake)
    out: list[Decision | LiveJudgment] = []
    versions = registry.versions(spec.name)  # read once; no artifact is read to decide
    kinds: dict[int | None, str] = dict(versions.select("version", "kind").iter_rows())
    batch, online = (max((v for v, k in kinds.items() if k == kind and v is not None),
                         default=None) for kind in ("batch", "online"))  # fmt: skip
    champion = registry.alias(spec.name, CHAMPION)
    if champion is None and online is not None:
        # Until a champion is named the newest version serves: the online line already.
        registry.set_alias(spec.name, CHAMPION, online, reason="the online line", by=POLICY)
        champion = online
    if champion is not None and online is not None and kinds.get(champion) == "batch":
        ended = _end_on_drift(registry, spec, versions, champion, online)
        if ended is not None:
            out.append(ended)
            champion = online
    if champion is None:
        if batch is not None:
            out.append(evaluate(lake, spec, batch, holdout_days=holdout_days, margin=margin))
    elif batch is not None and batch not in set(registry.decisions(spec.name)["challenger"]):
        if kinds.get(champion) == "online":
            out.append(_shadow(registry, spec, batch, champion))
        else:
            out.append(evaluate(lake, spec, batch, holdout_days=holdout_days, margin=margin))
    champion = registry.alias(spec.name, CHAMPION)
    if (
        online is not None
        and kinds.get(champion) == "batch"
        and registry.launch(spec.name).mode == "none"
    ):
        launch(registry, spec.name, "shadow", challenger=online, by=POLICY,
               reason=f"the online line challenges v{champion}")  # fmt: skip
    judgment = judge_live(lake, spec, margin=margin)
    return [*out, judgment] if judgment is not None else out


def _shadow(
    registry: ModelRegistry, spec: ModelSpec, version: int, champion: int | None
) -> Decision:
    """Launch batch ``version`` as the shadow of the online line; record why."""
    reason = "launched as the online line's shadow: live traffic judges it"
    launch(registry, spec.name, "shadow", challenger=version, by=POLICY, reason=reason)
    name = type(spec.make_metric()).__name__
    registry.record_decision(
        name=spec.name, challenger=version, champion=champion, metric=name,
        challenger_score=None, champion_score=None, margin=None, holdout_rows=0,
        promoted=False, reason=reason,
    )  # fmt: skip
    return Decision(version, champion, name, float("nan"), None, 0, False, reason)
