"""Pid 1 of a rootfs container: mount its filesystem, chroot into it, then run or wait.

Standalone on purpose (stdlib only, run as ``python -I -S nsinit.py CONFIG_JSON`` under
``unshare --mount --pid --fork``): it must not import the emulator, and after `chroot` it can no
longer import anything from the host.

Everything it mounts lives in the container's private mount namespace (unshare(1) makes the
new namespace's propagation private), so the kernel drops every mount when the last process of
the namespace exits: nothing is ever mounted on the host, and a crashed emulator leaves no
mount behind. When pid 1 exits, the kernel SIGKILLs every other process of the pid namespace.

Modes (``config["mode"]``):

* ``serve``: a sandbox. Prints ``ready <host pid>`` once the root is set up, then reaps orphans
  until its stdin reaches EOF (the emulator closes it to end the sandbox, or dies).
* ``run``: one image build step. Runs ``config["argv"]`` inside the root and exits with its
  status (128 + N when killed by signal N).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def _bind(source: str, target: str, readonly: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.lexists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass
    _mount(source, target, "", MS_BIND)
    if readonly:
        _mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)


def _setup_dev(root: str) -> None:
    """A minimal /dev like a container runtime's: a tmpfs with the usual character devices."""
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, major, minor in (
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ):
        path = os.path.join(dev, name)
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        os.symlink(target, os.path.join(dev, name))
    os.makedirs(os.path.join(dev, "pts"))
    shm = os.path.join(dev, "shm")
    os.makedirs(shm)
    _mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k")


def setup_root(config: dict[str, object]) -> str:
    """Mount the overlay and the pseudo filesystems; return the merged root path."""
    merged = str(config["merged"])
    lowers = [str(x) for x in config["lowers"]]  # type: ignore[attr-defined]
    # Relative lowerdirs (resolved against our cwd) keep the option string short enough for
    # long layer chains, as Docker's overlay driver does.
    os.chdir(str(config["layers_dir"]))
    options = f"lowerdir={':'.join(lowers)},upperdir={config['upper']},workdir={config['work']}"
    _mount("overlay", merged, "overlay", 0, options)
    os.chdir("/")
    proc = os.path.join(merged, "proc")
    os.makedirs(proc, exist_ok=True)
    _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys_dir = os.path.join(merged, "sys")
    os.makedirs(sys_dir, exist_ok=True)
    _mount("sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _setup_dev(merged)
    tmp = os.path.join(merged, "tmp")
    os.makedirs(tmp, mode=0o1777, exist_ok=True)
    if os.stat(tmp).st_mode & 0o7777 != 0o1777:  # a no-op chmod would still copy /tmp up
        os.chmod(tmp, 0o1777)
    for source, target, readonly in config.get("binds", []):  # type: ignore[attr-defined]
        _bind(str(source), merged + str(target), bool(readonly))
    return merged


def _reap_orphans(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(config: dict[str, object]) -> int:
    # Our host pid (for nsenter) while /proc is still the host's.
    host_pid = os.readlink("/proc/self")
    merged = setup_root(config)
    os.chroot(merged)
    os.chdir("/")
    signal.signal(signal.SIGCHLD, _reap_orphans)
    os.write(1, f"ready {host_pid}\n".encode())
    while os.read(0, 4096):
        pass
    return 0


def _copy_in(source_fd: int) -> None:
    """Copy the tree open at `source_fd` onto "/" (we are chrooted: symlinks resolve inside)."""
    for dirpath, _dirs, files, dir_fd in os.fwalk(".", dir_fd=source_fd):
        target = os.path.normpath(os.path.join("/", dirpath))
        os.makedirs(target, mode=0o755, exist_ok=True)
        for name in files:
            src = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
            try:
                mode = os.fstat(src).st_mode & 0o7777
                dst = os.open(
                    os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode
                )
                try:
                    while chunk := os.read(src, 1 << 20):
                        os.write(dst, chunk)
                    os.fchmod(dst, mode)
                finally:
                    os.close(dst)
            finally:
                os.close(src)


def run(config: dict[str, object]) -> int:
    merged = setup_root(config)
    argv = [str(a) for a in config.get("argv") or []]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in config["env"].items()}  # type: ignore[attr-defined]
    copy_from = config.get("copy_from")
    source_fd = os.open(str(copy_from), os.O_RDONLY | os.O_DIRECTORY) if copy_from else -1
    child = os.fork()
    if child == 0:
        try:
            os.chroot(merged)
            if source_fd >= 0:
                _copy_in(source_fd)
                os._exit(0)
            os.chdir(str(config.get("cwd") or "/"))
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            what = argv[0] if argv else f"copy: {exc.filename}"
            os.write(2, f"{what}: {exc.strerror}\n".encode())
            os._exit(127 if exc.errno == 2 else 126)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def main() -> int:
    config = json.loads(sys.argv[1])
    try:
        return serve(config) if config["mode"] == "serve" else run(config)
    except OSError as exc:
        os.write(2, f"modal emulator (rootfs): container setup failed: {exc}\n".encode())
        return 125


if __name__ == "__main__":
    sys.exit(main())
