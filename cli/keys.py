"""Key lifecycle, tags, aliases and rotation: one command per AWS operation."""

from __future__ import annotations

import click

from keyledger.cli import params
from keyledger.cli.output import call, operation

KEY_ID_HELP = "The key: key id, key ARN, alias name (alias/...) or alias ARN."
key_id_option = click.option("--key-id", required=True, help=KEY_ID_HELP)
limit_option = click.option("--limit", type=int, default=None, help="At most this many items in the page.")
marker_option = click.option("--marker", default=None, help="NextMarker of the previous page.")
grant_tokens_option = click.option(
    "--grant-tokens", multiple=True, metavar="TOKENS",
    help="Grant tokens (space-separated, or a JSON list) of grants to honour; grants here take "
         "effect at once, so a token is only checked.")
bypass_lockout_option = click.option(
    "--bypass-policy-lockout-safety-check/--no-bypass-policy-lockout-safety-check", default=False,
    help="Skip the check that the caller may still change the key policy afterwards.")


# -- lifecycle ----------------------------------------------------------------

@operation("create-key", list_options=["--tags"])
@click.option("--policy", default=None, metavar="POLICY",
              help="The key policy: file://PATH or the JSON text (default: the account root may do kms:*, "
                   "which delegates to IAM policies).")
@bypass_lockout_option
@click.option("--description", default="", help="A description of the key.")
@click.option("--key-usage", default="ENCRYPT_DECRYPT", show_default=True, help="The key's usage.")
@click.option("--key-spec", default=None, help="The key spec (SYMMETRIC_DEFAULT).")
@click.option("--origin", default="AWS_KMS", show_default=True, help="Where the key material comes from.")
@click.option("--tags", multiple=True, metavar="TAGS",
              help="TagKey=k,TagValue=v [TagKey=k2,TagValue=v2 ...] or a JSON list of tags.")
def create_key(policy: str | None, bypass_policy_lockout_safety_check: bool, description: str,
               key_usage: str, key_spec: str | None, origin: str, tags: tuple[str, ...]) -> None:
    """Create a symmetric encryption key (CreateKey)."""
    tag_list = params.tag_list("--tags", tags)
    document = params.text("--policy", policy)
    call(lambda kms: kms.create_key(description=description, key_usage=key_usage, key_spec=key_spec,
                                    origin=origin, tags=tag_list, policy=document,
                                    bypass_policy_lockout_safety_check=bypass_policy_lockout_safety_check))


@operation("describe-key", list_options=["--grant-tokens"])
@key_id_option
@grant_tokens_option
def describe_key(key_id: str, grant_tokens: tuple[str, ...]) -> None:
    """Show a key's metadata (DescribeKey)."""
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.describe_key(key_id, grant_tokens=tokens))


@operation("list-keys")
@limit_option
@marker_option
def list_keys(limit: int | None, marker: str | None) -> None:
    """List the keys of the ledger, one page (ListKeys)."""
    call(lambda kms: kms.list_keys(limit=limit, marker=marker))


@operation("update-key-description")
@key_id_option
@click.option("--description", required=True, help="The new description.")
def update_key_description(key_id: str, description: str) -> None:
    """Replace a key's description (UpdateKeyDescription)."""
    call(lambda kms: kms.update_key_description(key_id, description))


@operation("enable-key")
@key_id_option
def enable_key(key_id: str) -> None:
    """Enable a disabled key (EnableKey)."""
    call(lambda kms: kms.enable_key(key_id))


@operation("disable-key")
@key_id_option
def disable_key(key_id: str) -> None:
    """Disable a key: it can no longer encrypt or decrypt (DisableKey)."""
    call(lambda kms: kms.disable_key(key_id))


@operation("schedule-key-deletion")
@key_id_option
@click.option("--pending-window-in-days", type=int, default=None,
              help="Days (7-30, default 30) before the key is deleted.")
def schedule_key_deletion(key_id: str, pending_window_in_days: int | None) -> None:
    """Schedule a key's deletion after a waiting period (ScheduleKeyDeletion)."""
    call(lambda kms: kms.schedule_key_deletion(key_id, pending_window_in_days=pending_window_in_days))


@operation("cancel-key-deletion")
@key_id_option
def cancel_key_deletion(key_id: str) -> None:
    """Cancel a scheduled deletion; the key returns Disabled (CancelKeyDeletion)."""
    call(lambda kms: kms.cancel_key_deletion(key_id))


# -- tags ---------------------------------------------------------------------

@operation("tag-resource", list_options=["--tags"])
@key_id_option
@click.option("--tags", multiple=True, required=True, metavar="TAGS",
              help="TagKey=k,TagValue=v [TagKey=k2,TagValue=v2 ...] or a JSON list of tags.")
def tag_resource(key_id: str, tags: tuple[str, ...]) -> None:
    """Add or overwrite tags on a key (TagResource)."""
    tag_list = params.tag_list("--tags", tags)
    call(lambda kms: kms.tag_resource(key_id, tag_list))


@operation("untag-resource", list_options=["--tag-keys"])
@key_id_option
@click.option("--tag-keys", multiple=True, required=True, metavar="KEYS",
              help="Tag keys to remove, space-separated, or a JSON list.")
def untag_resource(key_id: str, tag_keys: tuple[str, ...]) -> None:
    """Remove tags from a key (UntagResource)."""
    keys = params.string_list("--tag-keys", tag_keys)
    call(lambda kms: kms.untag_resource(key_id, keys))


@operation("list-resource-tags")
@key_id_option
@limit_option
@marker_option
def list_resource_tags(key_id: str, limit: int | None, marker: str | None) -> None:
    """List a key's tags (ListResourceTags)."""
    call(lambda kms: kms.list_resource_tags(key_id, limit=limit, marker=marker))


# -- aliases ------------------------------------------------------------------

alias_name_option = click.option("--alias-name", required=True, help="The alias: alias/NAME.")
target_option = click.option("--target-key-id", required=True, help="The key: key id or key ARN.")


@operation("create-alias")
@alias_name_option
@target_option
def create_alias(alias_name: str, target_key_id: str) -> None:
    """Create an alias for a key (CreateAlias)."""
    call(lambda kms: kms.create_alias(alias_name, target_key_id))


@operation("update-alias")
@alias_name_option
@target_option
def update_alias(alias_name: str, target_key_id: str) -> None:
    """Point an alias at another key, e.g. for manual rotation (UpdateAlias)."""
    call(lambda kms: kms.update_alias(alias_name, target_key_id))


@operation("delete-alias")
@alias_name_option
def delete_alias(alias_name: str) -> None:
    """Delete an alias; its key is unaffected (DeleteAlias)."""
    call(lambda kms: kms.delete_alias(alias_name))


@operation("list-aliases")
@click.option("--key-id", default=None, help="Only the aliases of this key. " + KEY_ID_HELP)
@limit_option
@marker_option
def list_aliases(key_id: str | None, limit: int | None, marker: str | None) -> None:
    """List aliases, of all keys or of one (ListAliases)."""
    call(lambda kms: kms.list_aliases(key_id=key_id, limit=limit, marker=marker))


# -- rotation -----------------------------------------------------------------

@operation("enable-key-rotation")
@key_id_option
@click.option("--rotation-period-in-days", type=int, default=None,
              help="Days between automatic rotations (90-2560, default 365).")
def enable_key_rotation(key_id: str, rotation_period_in_days: int | None) -> None:
    """Turn on automatic rotation of a key's material (EnableKeyRotation)."""
    call(lambda kms: kms.enable_key_rotation(key_id, rotation_period_in_days=rotation_period_in_days))


@operation("disable-key-rotation")
@key_id_option
def disable_key_rotation(key_id: str) -> None:
    """Turn off automatic rotation (DisableKeyRotation)."""
    call(lambda kms: kms.disable_key_rotation(key_id))


@operation("get-key-rotation-status")
@key_id_option
def get_key_rotation_status(key_id: str) -> None:
    """Show whether a key rotates automatically, and when next (GetKeyRotationStatus)."""
    call(lambda kms: kms.get_key_rotation_status(key_id))


@operation("rotate-key-on-demand")
@key_id_option
def rotate_key_on_demand(key_id: str) -> None:
    """Rotate a key's material now; old versions still decrypt (RotateKeyOnDemand)."""
    call(lambda kms: kms.rotate_key_on_demand(key_id))


@operation("list-key-rotations")
@key_id_option
@limit_option
@marker_option
def list_key_rotations(key_id: str, limit: int | None, marker: str | None) -> None:
    """List a key's rotations with their dates and types (ListKeyRotations)."""
    call(lambda kms: kms.list_key_rotations(key_id, limit=limit, marker=marker))


COMMANDS = [
    create_key, describe_key, list_keys, update_key_description, enable_key, disable_key,
    schedule_key_deletion, cancel_key_deletion, tag_resource, untag_resource, list_resource_tags,
    create_alias, update_alias, delete_alias, list_aliases, enable_key_rotation, disable_key_rotation,
    get_key_rotation_status, rotate_key_on_demand, list_key_rotations,
]
