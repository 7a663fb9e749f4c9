"""Maintenance: the sweep of due rotations and deletions, signed checkpoints,
root-key rotation."""

from __future__ import annotations

import os
from pathlib import Path

from keyledger import checkpoint as checkpoint_
from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import policy as authz
from keyledger.errors import (
    AccessDeniedException,
    LedgerError,
)
from keyledger.home import NEXT_ROOT_KEY_FILE, ROOT_KEY_FILE, STAGED_ROOT_KEY_FILE, private_opener, root_key_lock
from keyledger.projections import ACCESS_KEY_ROW_PREFIX, digest, merkle, replay, split_row
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase
from keyledger.service.request import (
    _Request,
)


class MaintenanceOps(ServiceBase):
    """The sweep, checkpoints and the root key."""

    def checkpoint(self) -> checkpoint_.Checkpoint:
        """Sign and store a checkpoint of the log as it is now, after proving
        that the log still extends the latest stored checkpoint: the tree's
        right edge at the old size (from stored subtrees) must give the old
        signed root; the records since then must chain, and folding their
        hashes onto that edge must give both the stored head's frontier and
        the root the stored subtrees give. Never signs a fork, a rolled-back
        log, or a tree that disagrees with its records. The note also commits
        to the digest of the projection state at that size
        (`projections.digest`), which `audit verify` checks against the log."""
        if self._signer is None:
            raise LedgerError("this ledger has no checkpoint key (checkpoint.key)")
        meta = self.store.meta()
        origin = meta["origin"].decode()
        public = meta["checkpoint_public"]
        with self.store.snapshot() as snap:
            head = snap.head()
            stored = snap.checkpoints()
            start, prev_hash = 0, ev.GENESIS_HASH
            frontier: tuple[tuple[int, bytes], ...] = ()
            if stored:
                last = checkpoint_.verify(stored[-1], origin, public)
                if last.size > head.seq:
                    raise LedgerError(f"the log has {head.seq} records, fewer than the checkpoint of "
                                      f"size {last.size}: refusing to sign a rolled-back log")
                start = last.size
                if start:
                    before = snap.raw_record(start - 1)
                    if before is None:
                        raise LedgerError(f"record {start - 1}, under the checkpoint of size {last.size}, is missing")
                    prev_hash = before.hash
                    frontier = merkle.frontier_of(start, snap.node)
                    if merkle.root_of_frontier(frontier) != last.root:
                        raise LedgerError(f"the log does not extend the checkpoint of size {last.size}")
            for raw in snap.raw_records(start):
                if raw.prev_hash != prev_hash or ev.chain_hash(prev_hash, raw.body) != raw.hash:
                    raise LedgerError(f"record {raw.seq} does not verify: refusing to sign a checkpoint")
                frontier, _ = merkle.push(frontier, raw.seq, merkle.leaf_hash(raw.body))
                prev_hash = raw.hash
            root = merkle.root_of_frontier(frontier)
            if head.frontier != frontier or merkle.root(head.seq, snap.node) != root:
                raise LedgerError("the stored Merkle tree does not match the records: refusing to sign")
            # the state served from, in the same snapshot as the head (audit
            # verify checks it against the log folded to head.seq)
            live, broken = replay.live_tables(snap)
            if broken:
                raise LedgerError(f"{broken[0]}: refusing to sign a checkpoint")
            state = digest.state_digest(live)
        signed = checkpoint_.sign(origin, head.seq, root, self._signer, state)
        self.store.put_checkpoint(head.seq, signed.note)
        return signed

    def rotate_root_key(self) -> int:
        """Re-wrap every KEK under a fresh root key and destroy the old one.

        Deleting a key drops its KEK row, but LMDB copies pages on write, so
        the old (wrapped) row can linger in free pages, and in backups, until
        it is overwritten. Once the root key that wrapped it is gone, those
        copies are noise: this completes crypto-shredding. Only the account
        root may do it, and only for a file-held root key (an environment
        key must be rotated by whoever holds it). Returns the KEKs re-wrapped.

        On a node of a cluster the new key is not made here: every node must
        hold it before any applies the rotation, so the operator stages the
        same key on each (`stage_root_key`) and rotates on one. The batch
        carries the re-wrapped KEKs and the new key's check; each node checks
        its staged key against it, then swaps (`_adopt_root`).
        """
        self._may_change_root("rotate the root key")
        home = Path(self.store.path)
        with root_key_lock(home):  # a process opening this home waits until the new key is root.key
            return self._rotate_root_key(home)

    def _rotate_root_key(self, home: Path) -> int:
        if self.store.log is not None:  # a node of a cluster: the key staged on every node
            pending = home / STAGED_ROOT_KEY_FILE
            new = self._staged_root()
            if new is None:
                raise LedgerError(f"a node of a cluster rotates to the root key staged on every node: none is "
                                  f"staged at {pending} (keyledger stage-root-key on each node, the same key)")
            if crypto.root_check(new) == crypto.root_check(self._root):
                raise LedgerError("the staged root key is the current one: stage a new key on every node")
            reported = getattr(self.store.log, "staged_root_checks", None)  # a Node: what live nodes staged
            if reported is not None:
                want = crypto.root_check(new).hex()
                lacking = sorted(name for name, check in reported().items() if check != want)
                if lacking:
                    raise LedgerError(
                        f"node(s) {', '.join(lacking)} have not staged this root key (check {want}), as they "
                        "last reported: stage the same key on every node that is up, then rotate (a node that "
                        "is down follows once it has the key)")
        else:
            pending = home / NEXT_ROOT_KEY_FILE
            new = Secret(self._rng(32))
            fd = private_opener(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # 0600 whatever the umask
            try:
                os.write(fd, new.reveal())
                os.fsync(fd)
            finally:
                os.close(fd)

        def body(req: _Request) -> int:
            old = self._root  # as of this decision: on a cluster, another node's rotation may have come first
            if crypto.root_check(old) == crypto.root_check(new):
                raise LedgerError("the root key was just rotated to the staged key (by another node)")
            rows = req.view.keks()
            for name, wrapped in rows:  # a key's KEK row, per region (its name is its key row's)
                nonce = self._rng(crypto.NONCE_BYTES)
                if name.startswith(ACCESS_KEY_ROW_PREFIX):  # an access key's secret
                    access_key_id = name[len(ACCESS_KEY_ROW_PREFIX):]
                    secret = crypto.unwrap_access_secret(old, access_key_id, wrapped)
                    req.view.put_kek(name, crypto.wrap_access_secret(new, access_key_id, secret, nonce=nonce))
                    continue
                key_id = split_row(name.encode())[1]
                kek = crypto.unwrap_kek(old, key_id, wrapped)
                req.view.put_kek(name, crypto.wrap_kek(new, key_id, kek, nonce=nonce))
            check = crypto.root_check(new)
            req.view.put_meta("root_check", check)
            req.emit([ev.RootKeyRotated(len(rows), check)])
            return len(rows)

        try:
            count = self._run("RotateRootKey", body)
        except BaseException:
            if self.store.log is None:
                pending.unlink(missing_ok=True)
            raise  # (a cluster node keeps its staged key: the rotation may yet arrive through the log)
        self._adopt_root(crypto.root_check(new), new if self.store.log is None else None)
        return count

    def stage_root_key(self, key: bytes | None = None) -> str:
        """Place the next root key of a cluster on this node
        (`root.key.staged`, 0600): `key` (32 bytes, the same on every node),
        or a fresh one to copy to the others. Returns its check value (hex),
        to compare across nodes; `rotate_root_key` on any node then switches
        every node to it. Nothing is recorded: it is a file of this node,
        like root.key, and only the account root may write it
        (`keyledger.stage_root_key` does it without opening the ledger)."""
        import keyledger

        self._may_change_root("stage a root key")
        return keyledger.stage_root_key(self.store.path, key, rng=self._rng)

    def _may_change_root(self, what: str) -> None:
        from keyledger import ROOT_KEY_ENV

        if self.caller != authz.root_of(self.account):
            raise AccessDeniedException(f"User: {self.caller} is not authorized to {what}: only the account root may")
        if os.environ.get(ROOT_KEY_ENV):
            raise LedgerError(f"the root key comes from {ROOT_KEY_ENV}; rotate it where it is kept")

    def _staged_root(self) -> Secret | None:
        staged = Path(self.store.path) / STAGED_ROOT_KEY_FILE
        try:
            raw = staged.read_bytes()
        except FileNotFoundError:
            return None
        return Secret(raw) if len(raw) == 32 else None

    def _prepare_root(self, check: bytes) -> None:
        """Before a node applies a replicated root-key rotation: it holds the
        new key (already, or staged), or it stops here, applying nothing."""
        if crypto.root_check(self._root) == check:
            return
        staged = self._staged_root()
        if staged is None or crypto.root_check(staged) != check:
            raise LedgerError(
                f"the cluster rotated its root key (check {check.hex()}); this node cannot follow until the same "
                f"key is staged at {Path(self.store.path) / STAGED_ROOT_KEY_FILE} (keyledger stage-root-key "
                "--key-file FILE)")

    def _follow_root(self, check: bytes) -> None:
        """Another process on this home rotated the root key (`keyledger
        rotate-root-key` beside a running `keyledger serve`): this process
        takes the new key from where that process keeps it, root.key.next
        until it renames it root.key, before it wraps or unwraps anything
        again. Only the rotating process renames; a process that cannot
        find the key refuses to write (the old key wraps nothing new)."""
        if crypto.root_check(self._root) == check:
            return
        home = Path(self.store.path)
        for name in (NEXT_ROOT_KEY_FILE, ROOT_KEY_FILE):
            try:
                raw = (home / name).read_bytes()
            except FileNotFoundError:
                continue
            if len(raw) == 32 and crypto.root_check(Secret(raw)) == check:
                self._switch_root(Secret(raw))
                return
        raise LedgerError(f"another process rotated this ledger's root key (check {check.hex()}) and the new key "
                          f"is not in {home}: reopen the ledger with it")

    def _switch_root(self, key: Secret) -> None:
        """Use `key` as the root key from now on: what was unwrapped under
        the old one is forgotten."""
        self._keyring["root"] = key
        self.store.root_seen = crypto.root_check(key)
        with self._cache_lock:
            self._keks.clear()

    def _adopt_root(self, check: bytes, new: Secret | None = None) -> None:
        """After a root-key rotation committed on this node (its own, or one
        it applied): the new key (`new`, or the staged one) becomes root.key
        and the key the ledger uses; the old one is gone. Idempotent."""
        from keyledger import _fsync_dir

        if crypto.root_check(self._root) == check:
            return
        home = Path(self.store.path)
        source = home / (NEXT_ROOT_KEY_FILE if new is not None else STAGED_ROOT_KEY_FILE)
        key = new if new is not None else self._staged_root()
        if key is None or crypto.root_check(key) != check:  # _prepare_root let it through: cannot happen
            raise LedgerError("the new root key is missing: reopen the ledger to finish the rotation")
        os.replace(source, home / ROOT_KEY_FILE)
        _fsync_dir(home)
        self._switch_root(key)

    def verifier_key(self) -> str:
        """The checkpoint verifier key (`<origin>+<key hash>+<base64 Ed25519 key>`,
        the C2SP note format) that auditors use to check signed checkpoints
        without the ledger's secrets."""
        meta = self.store.meta()
        return checkpoint_.verifier_key(meta["origin"].decode(), meta["checkpoint_public"])

    def rotate_due(self) -> dict[str, int]:
        """The sweep: append every automatic rotation and key deletion that
        has fallen due, for all keys. Returns counts."""
        def body(req: _Request) -> dict[str, int]:
            before = len(req.view.appended)
            for row, state in req.view.scan("keys"):  # every region's keys
                if state.state != cmd.DELETED:
                    # not touch: a key it deletes is no error
                    req.elsewhere(split_row(row)[0]).maintain(state.key_id)
            done = req.view.appended[before:]
            return {"rotated": sum(isinstance(x.event, ev.KeyRotated) for x in done),
                    "deleted": sum(isinstance(x.event, ev.KeyDeleted) for x in done)}
        return self._run("RotateDue", body)

