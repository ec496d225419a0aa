"""argparse types shared by the tools: bad numbers are refused before any work starts."""
import argparse


def positive_number(text: str) -> float:
    """argparse type of an option in seconds: a number > 0 (refused before any work starts;
    e.g. a bad ``--budget-s`` of tools/benchmark.py used to be found only by its first
    training child, after the suite's teacher had been trained or checked)."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not value > 0:
        raise argparse.ArgumentTypeError(f'takes a number of seconds > 0; got {text!r}')
    return value


def positive_int(text: str) -> int:
    """argparse type of a count option (iterations, epochs, images): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'takes an integer >= 1; got {text!r}')
    return value
