"""The fast subset of the bad-input sweep (issue 27): each case through the real command
line; the whole sweep is ``python -m tests.badinput.sweep``."""

import pytest

from .corpus import build_corpus, cases
from .sweep import PASSING, run_sweep


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("badinput"))


def test_fast_subset_has_no_data_loss_hang_internal_error_or_accepted_bad_input(corpus):
    selected = [c for c in cases(corpus) if c.fast]
    assert 20 <= len(selected) <= 40
    results = run_sweep(selected, corpus, corpus.parent / "cases", jobs=2)
    failed = [f"{r.outcome}: {r.case.name}: {r.detail}" for r in results if r.outcome not in PASSING]
    assert not failed, "\n".join(failed)
    # the subset covers the outcomes that mattered: the two data-loss cases, a hang, a pickle
    names = {r.case.name for r in results}
    assert {
        "classify-image FOLDER --cam FOLDER",
        "train beside the user's .csv and .resume",
        "maps fifo.h5",
        "maps --model evil.pt",
    } <= names
    assert {r.outcome for r in results} == {"clean-error", "ok"}
