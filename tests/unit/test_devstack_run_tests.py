"""`devstack run-tests`: its args are one pytest run, or several split at `--then`."""

from devstack._cli import split_runs


def test_without_then_the_args_are_one_run() -> None:
    assert split_runs(["-q", "-n", "4", "tests/unit"]) == [["-q", "-n", "4", "tests/unit"]]


def test_then_starts_another_run_with_its_own_args() -> None:
    runs = split_runs(["-n", "4", "--ignore=F", "--then", "-p", "no:xdist", "F"])
    assert runs == [["-n", "4", "--ignore=F"], ["-p", "no:xdist", "F"]]


def test_no_args_is_one_run_of_pytest_defaults() -> None:
    assert split_runs([]) == [[]]
