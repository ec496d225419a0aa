"""Relative paths of the shipped configs, read from another folder than the repository."""
import os
import os.path as osp

# The repository a development install runs from (configs/, work_dirs/ beside the package).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def found_under_repo_root(path: str | None, key: str, root: str | None = None) -> str | None:
    """An error sentence when the relative ``path`` (the value of config ``key``) is missing
    from the current directory but exists under the repository: the configs' defaults
    (``work_dirs/teachers/...``) are relative to it, so a run started from another folder
    would otherwise be told to create what it already has. ``None`` otherwise."""
    root = REPO_ROOT if root is None else root
    if not path or osp.isabs(path) or osp.exists(path):
        return None
    candidate = osp.join(root, path)
    if not osp.exists(candidate) or osp.abspath(path) == osp.abspath(candidate):
        return None
    return (f"{key} '{path}' does not exist in the current directory ({os.getcwd()}), which "
            'relative paths are read from, but it does under the repository: pass '
            f'`--cfg-options {key}={candidate}` or run from {root}.')
