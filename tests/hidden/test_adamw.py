"""AdamW against float64 torch.optim.AdamW on drawn shapes, hyperparameters, groups, schedules,
missing gradients and reloads (within the bounds the "adamw" row assumes)."""

from hypothesis import given
from hypothesis import strategies as st

from ..strategies import seeds
from ..test_adamw import adamw_case, check

shape_sets = st.sampled_from([[(3,), (2, 4)], [(6,), (1,), (3, 3)], [(2, 2, 2), (5,), (4,), (7,)]])
betas_drawn = st.sampled_from([(0.9, 0.999), (0.9, 0.95), (0.8, 0.99)])
lrs_drawn = st.sampled_from([1e-3, 3e-3])
weight_decays = st.sampled_from([0.0, 0.01, 0.1])


@st.composite
def adamw_configs(draw):
    shapes = draw(shape_sets)
    steps = draw(st.integers(min_value=1, max_value=10))
    defaults = dict(lr=draw(lrs_drawn), betas=draw(betas_drawn), eps=1e-8, weight_decay=draw(weight_decays))
    groups = None
    if len(shapes) > 1 and draw(st.booleans()):
        groups = [{"params": [0]}, {"params": list(range(1, len(shapes))), "lr": draw(lrs_drawn),
                                    "weight_decay": draw(weight_decays), "betas": draw(betas_drawn)}]
    missing = set()
    if draw(st.booleans()):
        index = draw(st.integers(min_value=0, max_value=len(shapes) - 1))
        missing = {(s, index) for s in range(steps) if draw(st.booleans())}
    lrs = draw(st.one_of(st.none(), st.lists(st.sampled_from([0.0, 5e-4, 1e-3, 3e-3]), min_size=steps, max_size=steps)))
    reload_after = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=max(1, steps - 1))))
    if reload_after is not None and reload_after >= steps:
        reload_after = None
    return shapes, steps, defaults, groups, missing, lrs, reload_after


@given(config=adamw_configs(), seed=seeds)
def test_adamw_matches_torch_on_drawn_cases(impl, oracle, config, seed):
    shapes, steps, defaults, groups, missing, lrs, reload_after = config
    parameters, grads = adamw_case(shapes, steps, seed, missing=missing)
    check(impl, oracle, parameters, grads, defaults, f"{steps} steps, defaults {defaults}, groups {groups}, no gradient at "
          f"(step, parameter) {sorted(missing)}, lrs {lrs}, reload after {reload_after}",
          groups=groups, lrs=lrs, reload_after=reload_after)
