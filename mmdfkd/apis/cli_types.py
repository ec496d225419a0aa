"""argparse types shared by the tools: bad numbers are refused before any work starts."""
import argparse
from collections.abc import Sequence

from mmengine.config import DictAction


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


class ConfigOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options KEY=VALUE ...``, with argparse errors
    for what it cannot read: a pair without ``=`` (it raised a bare unpacking error) and a
    dict value such as ``custom_hooks=[dict(type=...)]`` (its parser recursed until
    ``RecursionError``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Sequence[str] | str | None, option_string: str | None = None) -> None:
        """Parse ``KEY=VALUE`` pairs into ``namespace``; a malformed pair is an argparse error."""
        option = option_string or '--cfg-options'
        for pair in [values] if isinstance(values, str) else values or []:
            key, sep, value = pair.partition('=')
            if not sep or not key:
                parser.error(f'{option} takes KEY=VALUE pairs, got {pair!r} (e.g. '
                             'teacher_ckpt=work_dirs/teachers/lenet5bn_fmnist/epoch_15.pth)')
            if 'dict(' in value or value.lstrip().startswith('{'):
                parser.error(f'{option} {key}: a dict value cannot be given here (mmengine '
                             'reads numbers, strings, lists and tuples); set its keys one by '
                             f'one ({key}.NAME=VALUE, or {key}.0.NAME=VALUE for the first item '
                             'of a list), or write a config that inherits this one and '
                             'changes it')
        try:
            super().__call__(parser, namespace, values, option_string)
        except RecursionError:
            parser.error(f'{option}: a value could not be parsed (nested too deeply); set '
                         'nested keys one by one (KEY.NAME=VALUE)')
