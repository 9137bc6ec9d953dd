"""Shared by the tests of sparsernn.nn: ``@pytest.mark.needs_native`` skips a test where the
compiled recurrence cannot be used (no C++ compiler, or ``SPARSERNN_NATIVE=0``), and
``@pytest.mark.needs_native("sparse")`` where the compiled sparse layer cannot; the PyTorch
and dense paths' tests run everywhere."""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_native(library='recurrence'): needs a compiled library of sparsernn.nn "
        "('recurrence' or 'sparse'); skipped where it is unavailable, with the reason",
    )


def _unavailable(library: str) -> str | None:
    if library == "sparse":
        from sparsernn.nn import sparse_kernel

        return sparse_kernel.unavailable_reason()
    from sparsernn.nn import native

    return native.unavailable_reason()


def pytest_runtest_setup(item):
    for mark in item.iter_markers(name="needs_native"):
        library = mark.args[0] if mark.args else "recurrence"
        reason = _unavailable(library)
        if reason is not None:
            what = "sparse layer" if library == "sparse" else "recurrence"
            pytest.skip(f"compiled {what} unavailable: {reason}")
