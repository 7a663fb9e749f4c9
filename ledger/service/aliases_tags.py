"""Aliases and tags: Create/Update/DeleteAlias, ListAliases, Tag/UntagResource,
ListResourceTags."""

from __future__ import annotations

from typing import Any

from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import responses as r
from keyledger.projections import in_scope, key_row, scope_prefix, split_row
from keyledger.projections.state import KeyState
from keyledger.service import managed
from keyledger.service.base import ServiceBase
from keyledger.errors import ValidationException
from keyledger.events import from_us
from keyledger.service.request import (
    _alias_marker,
    _decode_marker,
    _encode_marker,
    _Request,
    _request_tags,
    _tag_marker,
)


class AliasTagOps(ServiceBase):
    """Aliases and tags of keys."""

    def tag_resource(self, key_id: str, tags: Any) -> None:
        """TagResource: add or overwrite tags on the key (`{"k": "v"}` or AWS's
        `[{"TagKey": ..., "TagValue": ...}]`); tags can grant access through
        aws:ResourceTag conditions, so they are authorized like policy changes.

        Raises NotFoundException, KMSInvalidStateException, TagException (aws:
        prefix, over 50 tags), AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            tag_map = cmd.check_tags(tags)
            state = req.key(key_id)
            req.authorize("kms:TagResource", state, extra=_request_tags(tag_map))
            req.emit(cmd.tag(state, req.arn(state.key_id), tag_map))
        return self._run("TagResource", body, key_hint=key_id)

    def untag_resource(self, key_id: str, tag_keys: list[str]) -> None:
        """UntagResource: remove the named tag keys from the key (absent keys are no error).

        Raises NotFoundException, KMSInvalidStateException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> None:
            keys = cmd.check_tag_keys(tag_keys)
            state = req.key(key_id)
            req.authorize("kms:UntagResource", state, extra={"aws:tagkeys": keys})
            req.emit(cmd.untag(state, req.arn(state.key_id), keys))
        return self._run("UntagResource", body, key_hint=key_id)

    def list_resource_tags(self, key_id: str, *, limit: int | None = None,
                           marker: str | None = None) -> r.ListResourceTagsResponse:
        """ListResourceTags: the key's tags sorted by key, `limit` at a time; pass
        `next_marker` back as `marker` for the next page.

        Raises NotFoundException, InvalidMarkerException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.ListResourceTagsResponse:
            n = cmd.check_limit(limit, 50)
            after = _decode_marker(marker, _tag_marker)
            state = req.key(key_id)
            req.authorize("kms:ListResourceTags", state)
            keys = sorted(k for k in state.tags if after is None or k.encode() > after)
            page = keys[:n]
            req.emit([ev.MetadataRead("ListResourceTags", state.key_id)])
            truncated = len(keys) > n
            return r.ListResourceTagsResponse([r.Tag(k, state.tags[k]) for k in page], truncated,
                                              _encode_marker(page[-1].encode()) if truncated else None)
        return self._run("ListResourceTags", body, key_hint=key_id)

    # -- aliases ----------------------------------------------------------------

    def create_alias(self, alias_name: str, target_key_id: str) -> None:
        """CreateAlias: a new `alias/<name>` for the key (a key id or ARN: never
        another alias). Callers may then name the key by it in DescribeKey and
        the cryptographic operations.

        Raises AlreadyExistsException, NotFoundException, KMSInvalidStateException,
        NotAuthorizedException (the reserved alias/aws/ prefix), AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            target = self._target(req, target_key_id)
            req.authorize("kms:CreateAlias", target)
            req.emit(cmd.create_alias(name, req.alias(name), target, req.arn(target.key_id), req.alias_arn(name)))
        return self._run("CreateAlias", body, key_hint=target_key_id)

    def update_alias(self, alias_name: str, target_key_id: str) -> None:
        """UpdateAlias: point an existing alias at another key, so code that names
        the alias moves to the new key without a change. Needs kms:UpdateAlias
        on both the old and the new key.

        Raises NotFoundException, KMSInvalidStateException, NotAuthorizedException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            target = self._target(req, target_key_id)
            req.authorize("kms:UpdateAlias", target)
            existing = req.alias(name)
            current = None if existing is None else req.view.get("keys", key_row(existing.key_id, req.scope))
            if current is not None and current.key_id != target.key_id:
                req.authorize("kms:UpdateAlias", current)
            req.emit(cmd.update_alias(name, existing, current, target, req.arn(target.key_id), req.alias_arn(name)))
        return self._run("UpdateAlias", body, key_hint=target_key_id)

    def _target(self, req: _Request, target_key_id: str) -> KeyState:
        """A key ID or key ARN. An alias name that exists is AWS's "Aliases must
        refer to keys"; any other alias form is an invalid key id, as elsewhere."""
        if isinstance(target_key_id, str) and target_key_id.startswith("alias/") and \
                req.alias(target_key_id) is not None:
            raise ValidationException("Aliases must refer to keys. Not aliases")
        return req.key(target_key_id)

    def delete_alias(self, alias_name: str) -> None:
        """DeleteAlias: remove the alias; the key and its ciphertexts are untouched.

        Raises NotFoundException, NotAuthorizedException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            existing = req.alias(name)
            if existing is not None:
                req.key_hint = existing.key_id
                req.authorize("kms:DeleteAlias", req.view.get("keys", key_row(existing.key_id, req.scope)))
            req.emit(cmd.delete_alias(name, existing, req.alias_arn(name)))
        return self._run("DeleteAlias", body)

    def list_aliases(self, *, key_id: str | None = None, limit: int | None = None,
                     marker: str | None = None) -> r.ListAliasesResponse:
        """ListAliases: every alias (or only `key_id`'s), `limit` at a time; pass
        `next_marker` back as `marker`. Aliases of a key whose deletion fell due
        are gone with it.

        Raises NotFoundException, InvalidMarkerException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.ListAliasesResponse:
            n = cmd.check_limit(limit, 100)
            after = _decode_marker(marker, _alias_marker)
            req.authorize("kms:ListAliases", None)
            if key_id is not None:
                state = req.key(key_id)
                names = [a for a in state.aliases if after is None or a.encode() > after]
                rows = [(a.encode(), req.alias(a)) for a in names[:n + 1]]
            else:
                rows, prefix = [], scope_prefix(req.scope)  # the request region's aliases only
                last = prefix + after if after is not None else None
                while len(rows) < n + 1:
                    page = req.view.scan("aliases", after=last, prefix=prefix, limit=n + 1)
                    ended = len(page) < n + 1
                    if not in_scope(page[-1][0] if page else b"", req.scope) and page:
                        page, ended = [(row, a) for row, a in page if in_scope(row, req.scope)], True
                    for row, _ in page:  # aliases of a key whose deletion fell due go with it
                        alias = req.alias(split_row(row)[1])
                        if alias is not None:
                            rows.append((row[len(prefix):], alias))
                        last = row
                    if ended:
                        break
                rows = managed.with_predefined(req, rows, after)  # alias/aws/* before their keys exist
            truncated = len(rows) > n
            rows = rows[:n]
            req.emit([ev.MetadataRead("ListAliases", state.key_id if key_id is not None else None)])
            entries = [r.AliasListEntry(a.alias_name, req.alias_arn(a.alias_name), a.key_id,
                                        from_us(a.created), from_us(a.updated)) if a is not None else
                       r.AliasListEntry(row.decode(), req.alias_arn(row.decode())) for row, a in rows]
            return r.ListAliasesResponse(entries, truncated, _encode_marker(rows[-1][0]) if truncated else None)
        return self._run("ListAliases", body, key_hint=key_id)

