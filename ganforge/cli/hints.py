"""The command line's wording of library errors: the library names the file, field or folder; the CLI, its flags.

Library code raises errors that carry what went wrong with which path or count, and never names a
flag: the same errors reach Python callers, who have no flags. This is the one place where such
an error is worded for someone at the command line, with the option that gave the value or fixes it.
"""

from __future__ import annotations

from ganforge.config.problems import InvalidConfigError, LeftoverParams
from ganforge.errors import GanforgeError, shorten
from ganforge.evaluation.offline import ImageCountError
from ganforge.evaluation.sample_files import SamplesFileError
from ganforge.files import RunDiskFullError
from ganforge.training.run_folder import OverwriteRefusedError, RunFolderExistsError, RunFolderMissingError
from ganforge.training.runs import CheckpointDoesNotFitError


def with_flag_hints(error: GanforgeError) -> str:
    """The message the command line shows for ``error``: worded with the flag involved where one is."""
    match error:
        case InvalidConfigError(leftover_params=leftovers) if leftovers:
            return str(error) + "".join(f"\n{clear_params_hint(leftover)}" for leftover in leftovers)
        case SamplesFileError():
            return f"--samples {error.path}: {error.problem}"
        case ImageCountError():
            return f"--n {error.count}: {error}"
        case RunFolderExistsError():
            return (
                f"run folder {error.path} already exists; pass --overwrite to replace it, "
                f"--resume {error.path} to continue it, or --set name=... for a new one"
            )
        case OverwriteRefusedError():
            return f"--overwrite: {error}"
        case RunFolderMissingError():
            return f"--resume {error.path}: no such run folder"
        case RunDiskFullError():
            return f"{error.problem}; free some space, then continue with: ganforge run --resume {error.run_folder}"
        case CheckpointDoesNotFitError():
            return (
                f"{error.path or 'the checkpoint'} does not fit the config being resumed (was model, data or optim "
                f"changed with --set?): {error.reason}"
            )
    return str(error)


def clear_params_hint(leftover: LeftoverParams) -> str:
    """How to drop params a file wrote for the component that ``--set SECTION.name=...`` replaced."""
    section, name = leftover.section, leftover.name
    keys = shorten(", ".join(leftover.keys), 200)
    return (
        f"  hint: --set {section}.name={name} kept the {section}.params the file wrote for "
        f"{leftover.name_in_file!r} ({keys}); to start from {name}'s defaults, add --set '{section}.params={{}}'"
    )
