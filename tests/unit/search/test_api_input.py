"""The search's Python API refuses what the command refuses, before anything starts
(the real search through it: tests/integration/test_api.py)."""

import pytest

from dejavu_tune.errors import DejavuError


def test_a_wrong_option_is_refused_naming_the_allowed_ones(tmp_path):
    from dejavu_tune import search

    with pytest.raises(DejavuError, match=r"num_sample: not an option of a search: expected "
                                          r"space=, overrides= or one of .*num_samples"):
        search.run(num_sample=3, storage_path=str(tmp_path))
    with pytest.raises(DejavuError, match="optim.epochz"):
        search.run(overrides={"optim.epochz": 2}, storage_path=str(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_load_of_a_directory_that_holds_no_search_says_so(tmp_path):
    from dejavu_tune import search

    with pytest.raises(DejavuError, match="is not a search directory"):
        search.load(tmp_path)
