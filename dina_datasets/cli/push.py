"""`dina push`: upload an exported folder to the Hugging Face Hub (after local checks)."""

from __future__ import annotations

import argparse
import re

from dina_datasets.errors import ConfigError, DinaError, NetworkError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a folder written by `dina export`")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME",
                        help="the dataset repository on the Hub (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", metavar="BRANCH", help="branch to push to")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    parser.add_argument("--commit-message", default="Upload DINA export")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the folder and the repository id, upload nothing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a README.md of the Hub repository that is not the card "
                             "of a DINA export (an earlier push's card is always replaced)")


def check_repo_id(repo_id: str) -> str:
    """A well-formed `ORG/NAME` Hub repository id; ConfigError otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or \
            "--" in repo_id or repo_id.endswith((".git", ".")):
        raise ConfigError(f"--repo-id must look like ORG/NAME (letters, digits, '-', '_', '.'), "
                          f"got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"invalid --repo-id {repo_id!r}: {err}") from None
    return repo_id


def run(args: argparse.Namespace) -> int:
    from dina_datasets.hf.audit import check_export
    from dina_datasets.hf.card import data_files_pattern

    repo_id = check_repo_id(args.repo_id)
    found = check_export(args.folder)
    print(f"{args.folder}: {len(found)} configs, {sum(c.num_examples for c in found):,} rows, "
          f"{sum(len(c.files) for c in found)} Parquet files")
    if args.dry_run:
        print(f"dry run: would upload to https://huggingface.co/datasets/{repo_id}")
        return 0
    patterns = [data_files_pattern(c.name) for c in found]
    if not args.overwrite:
        check_remote_card(repo_id, revision=args.revision, token=args.token)
    upload(args.folder, repo_id, patterns, private=args.private, revision=args.revision,
           token=args.token, commit_message=args.commit_message)
    print(f"uploaded to https://huggingface.co/datasets/{repo_id}")
    return 0


README = "README.md"


def check_remote_card(repo_id: str, *, revision: str | None = None,
                      token: str | None = None) -> None:
    """Before the upload: the repository's README.md, if it has one, is a DINA export's card
    (replaced by the new one); OutputError otherwise (a repository of someone else's data)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from dina_datasets.cli import OutputError
    from dina_datasets.hf.card import is_export_card

    api = HfApi(token=token)
    try:
        path = api.hf_hub_download(repo_id, README, repo_type="dataset", revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return  # a new repository or branch, or one without a card
    except Exception as err:
        raise hub_error(err, repo_id) from err
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    if not is_export_card(text):
        raise OutputError(f"https://huggingface.co/datasets/{repo_id} has a {README} that is not "
                          "the card of a DINA export: refusing to replace it; pass --overwrite "
                          "to replace it, or choose another --repo-id")


def upload(folder: str, repo_id: str, patterns: list[str], *, private: bool = False,
           revision: str | None = None, token: str | None = None,
           commit_message: str = "Upload DINA export") -> None:
    """Create the dataset repository if needed and upload README.md and the shards matching
    `patterns` in one commit; older shards of these configs on the Hub are deleted in it."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset",
                          revision=revision, commit_message=commit_message,
                          allow_patterns=[README, *patterns], delete_patterns=patterns)
    except Exception as err:
        raise hub_error(err, repo_id) from err


def hub_error(err: Exception, repo_id: str) -> DinaError | Exception:
    """The DinaError to raise for a failed Hub call (the error itself when it is a bug)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    where = f"https://huggingface.co/datasets/{repo_id}"
    module = type(err).__module__.split(".")[0]
    if isinstance(err, HfHubHTTPError):
        return ConfigError(f"the Hub refused the upload to {where}: {str(err).splitlines()[0]}"
                           " (check --repo-id and that the token may write there)")
    if isinstance(err, LocalTokenNotFoundError):
        return ConfigError(f"no Hub token to upload to {where}: log in with `hf auth login` "
                           "or pass --token")
    if isinstance(err, (ConnectionError, TimeoutError)) or module.startswith(
            ("httpx", "requests", "urllib3", "httpcore")):
        offline = "offline mode is on (HF_HUB_OFFLINE=1): unset it" if \
            type(err).__name__ == "OfflineModeIsEnabled" else "check the network"
        return NetworkError(f"cannot reach the Hugging Face Hub to upload to {where} "
                            f"({type(err).__name__}: {err}): {offline}; the exported folder "
                            "is unchanged, run `dina push` again when online")
    return err
