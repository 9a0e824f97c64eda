"""A phone, as a program over the generated Python bindings of dkls-mobile.

    python3 phone.py mobile --role initiator|follower --dir DIR --exchange DIR \
        --relay URL [--ca FILE] [--kind ed25519|p256]
        [--die-after ROUND] [--round-timeout SECS] [--payload-relay URL]
        [--signs N] [--presigns N] [--rust-storage]
        Two phones: exchange the out-of-band payload through files in --exchange (standing in
        for a QR code), run 2-of-2 key generation and KECCAK256 signing through the relay,
        verify the signature with the `cryptography` package (OpenSSL) and print one JSON
        line with the public key, address and signature.
    python3 phone.py check-relay --dir DIR --relay URL [--ca FILE]
        Prints the MobileError the phone gets for this relay (or "ok").
    python3 phone.py server --dir DIR --relay URL --ca FILE --exchange DIR --app APP
        The phone of a phone + server key: follows the steps the app's backend writes to
        --exchange (keygen, sign, presign, finish, refresh, xpub, done) and prints one JSON
        list with what each gave.
    python3 phone.py parse PAYLOAD
        Prints the MobileError for a bad payload (or the parsed payload).

Each phone keeps its storage in its own --dir (one file per key, written atomically and
fsynced), its identity secret included.
"""

import argparse
import asyncio
import gc
import json
import os
import signal
import statistics
import sys
import time

import dkls_mobile as m


class FileStorage(m.SecureStorage):
    """The app's secure storage, as files (a phone would use the Keychain / Keystore)."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _path(self, key):
        return os.path.join(self.root, key.replace("/", "__"))

    def get(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, key, value):
        tmp = self._path(key) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(key))

    def put_if_absent(self, key, value):
        try:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        return True

    def delete(self, key):
        try:
            os.remove(self._path(key))
        except FileNotFoundError:
            pass


class Rounds(m.ProgressListener):
    """Records each round; with `die_after`, the process is killed (SIGKILL: no clean-up, as
    when the OS kills an app) once that round is done."""

    def __init__(self, die_after=None):
        self.done = []
        self.die_after = die_after

    def round_done(self, protocol, round):
        self.done.append(f"{protocol}:{round}")
        if self.die_after == f"{protocol}:{round}":
            os.kill(os.getpid(), signal.SIGKILL)


def identity(storage, kind):
    secret = storage.get("identity-secret")
    if secret is None:
        secret = m.new_signer_secret(kind)
        storage.put("identity-secret", secret)
    return m.software_signer(kind, secret)


def phone(args, progress=None):
    # --rust-storage: the library's own file storage (what the Rust baseline uses), to time
    # the bindings without the cost of storage callbacks written in Python.
    if getattr(args, "rust_storage", False):
        storage = m.file_storage(args.dir)
    else:
        storage = FileStorage(args.dir)
    kind = m.IdentityKind.P256 if getattr(args, "kind", "ed25519") == "p256" else m.IdentityKind.ED25519
    ca = open(args.ca).read() if args.ca else None
    timeout = getattr(args, "round_timeout", 30)
    config = m.PhoneConfig(relay_url=args.relay, relay_ca_pem=ca, round_timeout_secs=timeout)
    signer = identity(storage, kind)
    return m.Phone(config, storage, signer, progress), signer


def cpu_by_thread():
    """This process's CPU time per thread name, in nanoseconds (Linux schedstat: all the time
    each thread ran, as the Rust baseline measures it)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        out[name] = out.get(name, 0) + ns
    return out


def cpu_delta(before, after):
    return {k: round((v - before.get(k, 0)) / 1e6, 2) for k, v in after.items()
            if v - before.get(k, 0) > 0}


def publish(exchange, name, text):
    tmp = os.path.join(exchange, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(exchange, name))


def wait_for(exchange, name, timeout=60):
    path = os.path.join(exchange, name)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {name} from the other phone within {timeout} s")
        time.sleep(0.02)
    with open(path) as f:
        return f.read()


def verify_with_openssl(public_key, message_hash, der):
    """Checks the signature with the `cryptography` package (OpenSSL), not our code."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    # Prehashed only needs a 32-byte digest algorithm for the length check.
    key.verify(der, message_hash, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


async def mobile(args):
    rounds = Rounds(args.die_after)
    me, signer = phone(args, None if args.no_progress else rounds)
    await me.check_relay()
    mine = m.OobPayload(
        instance_id=m.new_instance_id(),
        key_kind=signer.key_kind(),
        verifying_key=signer.verifying_key(),
        relay_url=args.payload_relay or args.relay,
    )
    other = "follower" if args.role == "initiator" else "initiator"
    publish(args.exchange, args.role, m.encode_payload(mine))
    theirs = m.parse_payload(wait_for(args.exchange, other))
    initiator, follower = (mine, theirs) if args.role == "initiator" else (theirs, mine)
    session = m.mobile_session(initiator, follower)

    threads = cpu_by_thread()
    started = time.process_time()
    key = await me.keygen("wallet", 2, session)
    keygen_cpu = time.process_time() - started
    keygen_threads = cpu_delta(threads, cpu_by_thread())

    # A fresh session id for each signing, chosen by the initiator and sent like the payload.
    def shared_session(name):
        if args.role == "initiator":
            publish(args.exchange, name, m.new_instance_id().hex())
        return m.Session(
            session_id=bytes.fromhex(wait_for(args.exchange, name)),
            players=[1, 2],
            public_keys=session.public_keys,
        )

    message = b"hello from two phones"
    path = "m/44/60/0/0/0"
    sign_each, presign_each, online_each = [], [], []
    for k in range(args.signs):
        sign_session = shared_session(f"sign-session-{k}")
        threads = cpu_by_thread()
        started = time.process_time()
        sig = await me.sign("wallet", sign_session, message, m.HashAlgorithm.KECCAK256, path)
        sign_each.append(time.process_time() - started)
        sign_threads = cpu_delta(threads, cpu_by_thread())
    # Presign + the online round (the same message), timed separately.
    for k in range(args.presigns):
        pre_session = shared_session(f"presign-session-{k}")
        started = time.process_time()
        [pid] = await me.presign("wallet", pre_session, 1, path)
        presign_each.append(time.process_time() - started)
        started = time.process_time()
        online = await me.sign_with_presignature("wallet", pid, [1, 2], message,
                                                 m.HashAlgorithm.KECCAK256, path)
        online_each.append(time.process_time() - started)
        assert online.message_hash == sig.message_hash
    derived = me.public_key("wallet", path)

    # The signature over the signed hash, checked by OpenSSL; the test driver checks that
    # the hash is KECCAK256(message).
    verify_with_openssl(derived.public_key, sig.message_hash, sig.der)
    print(json.dumps({
        "role": args.role,
        "message": message.hex(),
        "message_hash": sig.message_hash.hex(),
        "player": key.player,
        "public_key": key.public_key.hex(),
        "address": key.ethereum_address,
        "derived_public_key": derived.public_key.hex(),
        "r": sig.r.hex(),
        "s": sig.s.hex(),
        "v": sig.recovery_id,
        "rsv": sig.rsv.hex(),
        "verified_by": "cryptography/OpenSSL",
        "rounds": rounds.done,
        "keygen_cpu_s": keygen_cpu,
        "sign_cpu_s": statistics.median(sign_each),
        "presign_cpu_s": statistics.median(presign_each) if presign_each else None,
        "online_cpu_s": statistics.median(online_each) if online_each else None,
        "keygen_cpu_ms_by_thread": keygen_threads,
        "sign_cpu_ms_by_thread": sign_threads,
    }), flush=True)


async def refresh(args):
    """A refresh of the key `wallet` that `mobile` made with this storage, then a signature
    with it. With --die-after reshare:N the process kills itself during the refresh (the app
    killed); --resume is that app started again: it does not refresh, it only signs."""
    me, _ = phone(args, Rounds(args.die_after))
    await me.check_relay()
    other = "follower" if args.role == "initiator" else "initiator"
    publish(args.exchange, f"{args.role}.identity", me.identity())
    ids = {args.role: me.identity(), other: wait_for(args.exchange, f"{other}.identity")}
    public_keys = {1: ids["initiator"], 2: ids["follower"]}

    def shared_session(name):
        if args.role == "initiator":
            publish(args.exchange, name, m.new_instance_id().hex())
        return m.Session(session_id=bytes.fromhex(wait_for(args.exchange, name)),
                         players=[1, 2], public_keys=public_keys)

    out = {"role": args.role}
    if not args.resume:
        try:
            key = await me.refresh("wallet", shared_session("refresh"))
            out["refresh"] = "ok"
            out["refreshed_public_key"] = key.public_key.hex()
        except m.MobileError.Undecided as e:
            out["refresh"] = "MobileError.Undecided"
            out["epoch"] = e.epoch
            out["error"] = e.message
    message = b"after the refresh"
    sig = await me.sign("wallet", shared_session("sign"), message, m.HashAlgorithm.KECCAK256, "m")
    out.update(signature(sig))
    out["message"] = message.hex()
    out["public_key"] = me.public_key("wallet", "m").public_key.hex()
    print(json.dumps(out), flush=True)


async def check_relay(args):
    me, _ = phone(args)
    try:
        await me.check_relay()
        print("ok")
    except m.MobileError.Relay as e:
        print(f"MobileError.Relay: {e.message}")


def session_from(obj):
    return m.Session(
        session_id=bytes.fromhex(obj["session_id"]),
        players=obj["players"],
        public_keys={int(k): v for k, v in obj["public_keys"].items()},
    )


async def server(args):
    """The phone + server flow: the phone is a dynamic player of an mpc-node; the app's
    backend (the test driver) hands it the same sessions as the node, one step file at a time
    (step-1.json, step-2.json, ...), and the phone prints what each step gave it."""
    ca = open(args.ca).read()
    storage = FileStorage(args.dir)
    signer = identity(storage, m.IdentityKind.P256)
    config = m.PhoneConfig(relay_url=args.relay, relay_ca_pem=ca, application=args.app,
                           round_timeout_secs=30)
    me = m.Phone(config, storage, signer, None)
    await me.check_relay()
    publish(args.exchange, "phone.identity", me.identity())
    results = []
    for n in range(1, 100):
        step = json.loads(wait_for(args.exchange, f"step-{n}.json"))
        op, key_id = step["op"], step.get("key_id")
        if op == "done":
            break
        if op == "keygen":
            key = await me.keygen(key_id, step["threshold"], session_from(step))
            out = {"public_key": key.public_key.hex(), "player": key.player,
                   "address": key.ethereum_address}
        elif op == "sign":
            sig = await me.sign(key_id, session_from(step), bytes.fromhex(step["message"]),
                                m.HashAlgorithm.KECCAK256, step["path"])
            out = signature(sig)
        elif op == "presign":
            ids = await me.presign(key_id, session_from(step), step["count"], step["path"])
            out = {"presignature_ids": ids}
        elif op == "finish":
            sig = await me.sign_with_presignature(
                key_id, step["presignature_id"], step["players"],
                bytes.fromhex(step["message"]), m.HashAlgorithm.KECCAK256, step["path"])
            out = signature(sig)
            # The same presignature again: refused before anything is sent.
            try:
                await me.sign_with_presignature(
                    key_id, step["presignature_id"], step["players"],
                    bytes.fromhex(step["message"]), m.HashAlgorithm.KECCAK256, step["path"])
                out["reuse"] = "accepted"
            except m.MobileError.UnknownPresignature:
                out["reuse"] = "MobileError.UnknownPresignature"
        elif op == "refresh":
            key = await me.refresh(key_id, session_from(step))
            out = {"public_key": key.public_key.hex(), "player": key.player}
        elif op == "xpub":
            out = {"xpub": me.xpub(key_id, step["path"], False)}
        else:
            raise SystemExit(f"unknown step {op}")
        out["op"] = op
        results.append(out)
    print(json.dumps(results), flush=True)


def signature(sig):
    return {"r": sig.r.hex(), "s": sig.s.hex(), "v": sig.recovery_id,
            "message_hash": sig.message_hash.hex(), "der": sig.der.hex()}


async def cancel(args):
    """Starts a key generation whose peer never comes, cancels it, and checks that nothing
    was stored; then the phone still works (its relay check passes)."""
    me, signer = phone(args)
    await me.check_relay()
    peer = m.software_signer(m.IdentityKind.ED25519, m.new_signer_secret(m.IdentityKind.ED25519))
    session = m.mobile_session(
        m.OobPayload(instance_id=m.new_instance_id(), key_kind=signer.key_kind(),
                     verifying_key=signer.verifying_key(), relay_url=args.relay),
        m.OobPayload(instance_id=m.new_instance_id(), key_kind=peer.key_kind(),
                     verifying_key=peer.verifying_key(), relay_url=args.relay),
    )
    task = asyncio.ensure_future(me.keygen("never", 2, session))
    await asyncio.sleep(0.5)
    task.cancel()
    try:
        await task
        print("not cancelled")
        return
    except asyncio.CancelledError:
        pass
    try:
        me.public_key("never", "m")
        print("a share was stored")
    except m.MobileError.UnknownKey:
        await me.check_relay()
        print("cancelled, nothing stored")


def parse(args):
    try:
        p = m.parse_payload(args.payload)
        print(f"ok {p.relay_url}")
    except m.MobileError.Payload as e:
        print(f"MobileError.Payload: {e.message}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    mob = sub.add_parser("mobile")
    mob.add_argument("--role", choices=["initiator", "follower"], required=True)
    mob.add_argument("--kind", choices=["ed25519", "p256"], default="ed25519")
    mob.add_argument("--die-after", help="e.g. dkg:2: the process kills itself after that round")
    mob.add_argument("--round-timeout", type=int, default=30)
    mob.add_argument("--rust-storage", action="store_true",
                     help="use the library's file storage instead of the Python one")
    mob.add_argument("--signs", type=int, default=1, help="signatures to make (median CPU)")
    mob.add_argument("--presigns", type=int, default=0, help="presign + online rounds to time")
    mob.add_argument("--payload-relay", help="the relay URL to put in the payload (default --relay)")
    mob.add_argument("--no-progress", action="store_true",
                     help="no progress listener (as the Rust baseline; --die-after is ignored)")
    ref = sub.add_parser("refresh")
    ref.add_argument("--role", choices=["initiator", "follower"], required=True)
    ref.add_argument("--die-after", help="e.g. reshare:3: the process kills itself after that round")
    ref.add_argument("--round-timeout", type=int, default=30)
    ref.add_argument("--resume", action="store_true", help="only sign (the restarted app)")
    ref.add_argument("--exchange", required=True)
    for p in (mob, ref, sub.add_parser("check-relay"), sub.add_parser("cancel")):
        p.add_argument("--dir", required=True)
        p.add_argument("--relay", required=True)
        p.add_argument("--ca")
    mob.add_argument("--exchange", required=True)
    srv = sub.add_parser("server")
    for flag in ("--dir", "--relay", "--ca", "--exchange", "--app"):
        srv.add_argument(flag, required=True)
    sub.add_parser("parse").add_argument("payload")
    args = ap.parse_args()
    if args.cmd == "mobile":
        asyncio.run(mobile(args))
    elif args.cmd == "refresh":
        asyncio.run(refresh(args))
    elif args.cmd == "check-relay":
        asyncio.run(check_relay(args))
    elif args.cmd == "cancel":
        asyncio.run(cancel(args))
    elif args.cmd == "server":
        asyncio.run(server(args))
    else:
        parse(args)
    # Every Phone is released (its threads stopped) before the interpreter shuts down, as an
    # app releases it when it is done with it.
    gc.collect()


if __name__ == "__main__":
    sys.exit(main())
