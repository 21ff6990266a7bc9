"""The schedule on drawn configurations and iterations, against the closed form."""

from hypothesis import given
from hypothesis import strategies as st

from ..test_lr_schedule import check_at


@st.composite
def schedule_cases(draw):
    max_lr = draw(st.sampled_from([1.0, 6e-4, 3e-3]))
    min_lr = max_lr * draw(st.sampled_from([0.0, 0.1, 0.5]))
    warmup = draw(st.integers(min_value=1, max_value=50))
    cycle = warmup + draw(st.integers(min_value=1, max_value=500))
    it = draw(st.one_of(st.integers(min_value=0, max_value=warmup), st.integers(min_value=warmup, max_value=cycle),
                        st.integers(min_value=cycle, max_value=3 * cycle)))
    return it, (max_lr, min_lr, warmup, cycle)


@given(case=schedule_cases())
def test_lr_schedule_matches_the_closed_form_on_drawn_cases(impl, oracle, case):
    it, config = case
    check_at(impl, oracle, it, config, "drawn case")
