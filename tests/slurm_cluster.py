"""A real one-node SLURM cluster on this machine, for the SLURM executor's tests and by hand.

munged, slurmctld and slurmd (Debian: ``apt-get install slurm-wlm munge``) are started as
root with every file (munge key and socket, slurm.conf, state, spool, logs, pid files) under
one directory, on free ports, so nothing of the machine's own configuration is read or
changed and two clusters can run side by side. The SLURM commands find this cluster through
``SLURM_CONF=<dir>/slurm.conf``.

By hand::

    python tests/slurm_cluster.py start /tmp/nbe-slurm   # prints the export line
    export SLURM_CONF=/tmp/nbe-slurm/slurm.conf
    sinfo; nasbench-eval sweep studies/smoke.toml --executor slurm
    python tests/slurm_cluster.py stop /tmp/nbe-slurm
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel",
            "scontrol", "sinfo", "srun")
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order


class ClusterError(RuntimeError):
    """The cluster could not be started (the message holds the daemons' log tails)."""


def why_not() -> str | None:
    """Why a cluster cannot be started here (None: it can)."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "a SLURM test cluster needs a POSIX system"
    if os.geteuid() != 0:
        return "starting munged, slurmctld and slurmd as a test cluster needs root"
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        return (f"SLURM/munge not installed ({', '.join(missing)} missing; "
                f"apt-get install slurm-wlm munge)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that uses this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True) -> str:
        """A SLURM command against this cluster; its stdout."""
        res = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                             timeout=60)
        if check and res.returncode != 0:
            raise ClusterError(f"{' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def stop(self) -> None:
        stop(self.root)


def _conf(root: Path, cpus: int, memory_mb: int) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        "ClusterName=nbetest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.sock",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=2",  # scancel: SIGTERM, then SIGKILL 2 s later (the default is 30 s)
        "MinJobAge=300",  # ended jobs stay visible to squeue for 5 minutes
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "Waittime=0",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _tails(root: Path) -> str:
    parts = []
    for log in (root / "munge" / "munged.log", root / "log" / "slurmctld.log",
                root / "log" / "slurmd.log"):
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()[-8:]
            parts.append(f"--- {log}\n" + "\n".join(lines))
    return "\n".join(parts)


def start(root: str | os.PathLike, cpus: int = 2, memory_mb: int = 2048,
          timeout_s: float = 60.0) -> Cluster:
    """Configure and start munged, slurmctld and slurmd under ``root`` (created; must not
    hold a running cluster) and wait until the node is idle. Raises :class:`ClusterError`
    with the daemons' log tails when it does not come up."""
    reason = why_not()
    if reason:
        raise ClusterError(reason)
    root = Path(root).resolve()
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    cluster = Cluster(root)
    try:
        key = root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True,
                           capture_output=True, timeout=30)
        # --force: munged refuses root and a socket directory others cannot enter otherwise
        subprocess.run(["munged", "--force", f"--key-file={key}",
                        f"--socket={root}/munge/munge.sock",
                        f"--pid-file={root}/munge/munged.pid",
                        f"--log-file={root}/munge/munged.log",
                        f"--seed-file={root}/munge/munged.seed"],
                       check=True, capture_output=True, timeout=30)
        cluster.conf.write_text(_conf(root, cpus, memory_mb))
        # -i: ignore state files of an earlier cluster in this directory (a fresh queue)
        subprocess.run(["slurmctld", "-i", "-f", str(cluster.conf)], check=True,
                       capture_output=True, env=cluster.env, timeout=30)
        subprocess.run(["slurmd", "-f", str(cluster.conf)], check=True,
                       capture_output=True, env=cluster.env, timeout=30)
        deadline = time.time() + timeout_s
        while True:
            state = cluster.run("sinfo", "--noheader", "--format=%T", check=False).strip()
            if state == "idle":
                return cluster
            if time.time() > deadline:
                raise ClusterError(f"the node did not become idle in {timeout_s:.0f} s "
                                   f"(state {state!r})")
            time.sleep(0.5)
    except (OSError, subprocess.SubprocessError, ClusterError) as exc:
        detail = getattr(exc, "stderr", None)
        stop(root)
        raise ClusterError(f"the SLURM test cluster did not start: {exc}"
                           + (f"\n{detail.decode(errors='replace') if isinstance(detail, bytes) else detail}"
                              if detail else "")
                           + f"\n{_tails(root)}") from None


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(root: str | os.PathLike, timeout_s: float = 20.0) -> None:
    """Cancel this cluster's jobs, then stop its daemons (by the pids in their pid files)."""
    root = Path(root).resolve()
    cluster = Cluster(root)
    if cluster.conf.exists():
        try:
            cluster.run("scancel", "--full", f"--user={getpass.getuser()}",
                        check=False)
            deadline = time.time() + timeout_s
            while time.time() < deadline and cluster.run(
                    "squeue", "--noheader", check=False).strip():
                time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass
    for name in DAEMONS:
        pid_file = root / ("munge/munged.pid" if name == "munged" else f"{name}.pid")
        pid = _pid(pid_file)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "stop":
        stop(argv[1])
        return 0
    try:
        cluster = start(argv[1])
    except ClusterError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
