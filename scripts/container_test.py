"""Real local test of the challenge container, run the way organisers run it.

1. A Docker engine: the running one, else ``dockerd`` is installed (apt, docker.io) if
   missing and started here (vfs storage, no iptables), and stopped again at the end.
2. A base image built locally (``docker/local-base.sh``: debootstrap Debian + Python + the
   CPU torch wheel), reused when its recipe hash is unchanged.
3. Wheels of brats-goat and its dependencies built on the host into ``docker/wheelhouse``,
   then the repository's ``Dockerfile`` built with that base, offline (``--network none``).
4. Phantom cases from ``brats-goat synth``, segmented by ``docker run --network none`` with a
   read-only ``/input`` and ``--user`` of a non-root uid, in each entry form: no arguments,
   MLCube ``infer``, ``--shard K/N`` + ``merge-reports``, ``--help``, usage errors.
5. Checks: one ``<ID>.nii.gz`` per case and nothing else, geometry equal to the input, labels
   in {0,1,2,3}, exit 1 and the case named when a case is broken, the CPU-fallback warning,
   no file owned by root. Build time, image size and seconds per case go to a Markdown log.

Any problem, including an engine that cannot start, fails the test (exit 1): it never passes
by skipping.

    python scripts/container_test.py [--cases 3] [--no-cache] [--log build/container-test.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "brats-goat:container-test"
TEST_LABEL = "brats-goat.container-test=1"
UID = 4242  # the "host user" the container runs as: any non-root uid
TORCH_PIN = "torch==2.13.0"
CPU_WARNING = "no GPU visible"
#: dockerd command lines tried in turn when no engine runs: overlay2 starts containers in
#: about a second; vfs works everywhere but copies the whole image for every container and
#: every build step (minutes each). BRATS_GOAT_DOCKERD_ARGS replaces both.
DOCKERD_ARGS = (
    [os.environ["BRATS_GOAT_DOCKERD_ARGS"].split()]
    if os.environ.get("BRATS_GOAT_DOCKERD_ARGS")
    else [
        ["--storage-driver=overlay2", "--iptables=false", "--bridge=none"],
        ["--storage-driver=vfs", "--iptables=false", "--bridge=none"],
    ]
)


class TestFailure(Exception):
    """A check failed; the message says which and why."""


@dataclass
class Run:
    """One ``docker run``: its command line, exit code, log and wall time."""

    name: str
    args: list[str]
    rc: int
    log: str
    wall_s: float


@dataclass
class Record:
    """What the Markdown log reports: environment, builds, runs, per-case times, checks."""

    env: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        if not ok:
            raise TestFailure(f"{what}: {detail}" if detail else what)
        self.checks.append(what)
        print(f"  ok: {what}", flush=True)

    def add_run(self, run: Run, report: dict) -> None:
        """Wall time of a run and the in-container seconds of each of its cases."""
        n = len(report["cases"])
        per_case = f"{run.wall_s / n:.1f} s" if n else "-"
        self.runs.append(f"| {run.name} | {n} | {run.wall_s:.1f} s | {per_case} |")
        for case in report["cases"]:
            t = case["timings_s"]
            stages = ", ".join(f"{k} {v:.2f}" for k, v in t.items())
            self.cases.append(
                f"| {run.name} | {case['case_id']} | {case['status']} "
                f"| {sum(t.values()):.1f} | {stages} |"
            )

    def markdown(self, ok: bool, error: str = "") -> str:
        text = [
            "# Container test (`make container-test`, `scripts/container_test.py`)",
            "",
            f"**Result: {'PASS' if ok else 'FAIL'}** ({len(self.checks)} checks passed)",
            "",
            *self.env,
            "",
            "## Build",
            "",
            "| what | tag | time | size |",
            "|---|---|---|---|",
            *self.builds,
            "",
            "## Runs",
            "",
            f"Each run: `docker run --rm --network none --user {UID}:{UID} "
            "-v IN:/input:ro -v OUT:/output IMAGE [ARGS]` (MLCube form: `/mlcube_io0`, "
            "`/mlcube_io2`). No `--gpus`: the machine has none.",
            "",
            "| run | cases | wall time | per case (incl. container start-up) |",
            "|---|---|---|---|",
            *self.runs,
            "",
            "Per case, inside the container (seconds, from the report's `timings_s`):",
            "",
            "| run | case | status | total s | stages s |",
            "|---|---|---|---|---|",
            *self.cases,
            "",
            "## Checks",
            "",
            *[f"- {c}" for c in self.checks],
        ]
        if error:
            text += ["", "## Failure", "", "```", error, "```"]
        return "\n".join(text) + "\n"


def sh(
    args: Sequence[str], *, check: bool = True, capture: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the tail of its output."""
    proc = subprocess.run(
        list(args),
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-3000:]
        raise TestFailure(f"{' '.join(args[:4])}... failed (exit {proc.returncode}):\n{tail}")
    return proc


def engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return sh(["docker", "info"], check=False).returncode == 0


def start_engine(workdir: Path) -> subprocess.Popen | None:
    """Use the running engine, or install and start ``dockerd``; fail loudly if impossible."""
    if engine_running():
        print("docker engine: already running", flush=True)
        return None
    if os.geteuid() != 0:
        raise TestFailure("no Docker engine is running and this is not root: cannot start one")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        print("docker engine: installing docker.io with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                raise TestFailure(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    failures = []
    for n, dockerd_args in enumerate(DOCKERD_ARGS):
        log_path = workdir / f"dockerd-{n}.log"
        print(f"docker engine: starting dockerd {' '.join(dockerd_args)} (log {log_path})")
        log = open(log_path, "w")  # noqa: SIM115  (stays open for the daemon's lifetime)
        daemon = subprocess.Popen(["dockerd", *dockerd_args], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(60):
            if daemon.poll() is not None:
                break
            if engine_running():
                print(f"docker engine: up (pid {daemon.pid})", flush=True)
                return daemon
            time.sleep(1)
        stop_engine(daemon)
        failures.append(f"dockerd {' '.join(dockerd_args)}:\n{log_path.read_text()[-1500:]}")
    raise TestFailure("the Docker engine did not start; " + "\n".join(failures))


def stop_engine(daemon: subprocess.Popen | None) -> None:
    """Stop only the daemon this script started (by its pid)."""
    if daemon is None or daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def build_base(record: Record) -> str:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / "docker" / "local-base.sh")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TORCH": TORCH_PIN, "PYTHON": sys.executable},
        check=False,
    )
    if proc.returncode != 0:
        raise TestFailure(f"docker/local-base.sh failed (exit {proc.returncode})")
    tag = proc.stdout.strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    size = image_size(tag)
    record.builds.append(
        f"| base image (`docker/local-base.sh`) | `{tag}` | {seconds:.0f} s | {size / 1e9:.2f} GB |"
    )
    return tag


def build_wheelhouse(extras: str) -> Path:
    """Wheels of brats-goat and its dependencies, built on the host, minus torch."""
    wheelhouse = ROOT / "docker" / "wheelhouse"
    for old in wheelhouse.glob("*.whl"):
        old.unlink()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(f"{TORCH_PIN}\n")  # never an unpinned torch (several GB of CUDA wheels)
        constraints = fh.name
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    try:
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir"]
        sh([*pip_wheel, str(wheelhouse), "--constraint", constraints, target, "setuptools>=68"])
    finally:
        os.unlink(constraints)
    for wheel in wheelhouse.glob("torch-*.whl"):  # the base image provides torch
        wheel.unlink()
    return wheelhouse


def build_image(base: str, extras: str, no_cache: bool, workdir: Path, record: Record) -> None:
    args = ["docker", "build", "--network", "none", "--tag", IMAGE, "--label", TEST_LABEL]
    args += ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1"]
    args += ["--build-arg", f"EXTRAS={extras}", "--build-arg", "SAM_CHECKPOINT_URL="]
    if no_cache:
        args.append("--no-cache")
    args += ["--file", str(ROOT / "Dockerfile"), str(ROOT)]
    start = time.perf_counter()
    proc = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"}
    )
    seconds = time.perf_counter() - start
    (workdir / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise TestFailure(f"docker build failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    cached = (proc.stdout + proc.stderr).count("Using cache")
    size = image_size(IMAGE)
    note = f" ({cached} steps from the layer cache)" if cached else " (no layer cache)"
    record.builds.append(
        f"| image (`Dockerfile`, offline){note} | `{IMAGE}` | {seconds:.0f} s "
        f"| {size / 1e9:.2f} GB |"
    )
    record.check(True, f"image builds from the repository's Dockerfile offline ({seconds:.0f} s)")
    subprocess.run(
        ["docker", "image", "prune", "--force", "--filter", f"label={TEST_LABEL}"],
        capture_output=True,
        check=False,
    )


def image_size(tag: str) -> int:
    return int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip())


def docker_run(
    name: str, inp: Path, out: Path, args: Sequence[str], *, mounts: tuple[str, str] | None = None
) -> Run:
    """``docker run`` as organisers do: no network, read-only input, a non-root --user."""
    in_mount, out_mount = mounts or ("/input", "/output")
    cmd = ["docker", "run", "--rm", "--network", "none", "--user", f"{UID}:{UID}"]
    cmd += ["-v", f"{inp}:{in_mount}:ro", "-v", f"{out}:{out_mount}", IMAGE, *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    print(f"- {name}: exit {proc.returncode} in {wall:.1f} s", flush=True)
    return Run(name=name, args=cmd, rc=proc.returncode, log=log, wall_s=wall)


def make_dir(path: Path, owner: int | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def make_cases(workdir: Path, n: int) -> tuple[Path, Path, str]:
    """N phantom cases; a second input folder with one good and one broken case."""
    cases = make_dir(workdir / "cases")
    synth = [str(Path(sys.executable).with_name("brats-goat")), "synth", str(cases)]
    sh([*synth, "--cases", str(n), "--kind", "mixed", "--seed", "11", "--quiet"])
    ids = sorted(p.name for p in cases.iterdir() if p.is_dir())
    if len(ids) != n:
        raise TestFailure(f"synth wrote {len(ids)} cases, expected {n}")
    mixed = make_dir(workdir / "mixed")
    shutil.copytree(cases / ids[0], mixed / ids[0])
    broken = f"{ids[1]}-BROKEN"
    (mixed / broken).mkdir()
    for src in sorted((cases / ids[1]).glob("*.nii.gz")):
        dst = mixed / broken / src.name.replace(ids[1], broken)
        dst.write_bytes(
            src.read_bytes()[:600] if src.name.endswith("-t1c.nii.gz") else src.read_bytes()
        )
    for path in workdir.rglob("*"):  # readable by the container's uid
        path.chmod(0o755 if path.is_dir() else 0o644)
    return cases, mixed, broken


def input_image(case_dir: Path) -> nib.Nifti1Image:
    return nib.load(next(case_dir.glob("*-t1c.nii.gz")))


def check_outputs(
    record: Record, run: Run, inp: Path, out: Path, expected: Sequence[str], reports: set[str]
) -> None:
    """Exactly one valid label map per expected case, the reports, and nothing else."""
    names = {p.name for p in out.iterdir()}
    wanted = {f"{case_id}.nii.gz" for case_id in expected} | reports
    record.check(
        names == wanted,
        f"{run.name}: one <ID>.nii.gz per case and the report, nothing else",
        f"found {sorted(names)}, expected {sorted(wanted)}",
    )
    for case_id in expected:
        ref, pred = input_image(inp / case_id), nib.load(out / f"{case_id}.nii.gz")
        labels = np.asarray(pred.dataobj)
        same = (
            pred.shape == ref.shape
            and np.allclose(pred.affine, ref.affine, atol=1e-5)
            and int(pred.header["qform_code"]) == int(ref.header["qform_code"])
            and int(pred.header["sform_code"]) == int(ref.header["sform_code"])
        )
        record.check(
            same, f"{run.name}: {case_id} geometry equals the input (shape, affine, codes)"
        )
        valid = pred.get_data_dtype() == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
        record.check(valid, f"{run.name}: {case_id} is uint8 with labels in {{0,1,2,3}}")
    check_ownership(record, run, out)


def check_ownership(record: Record, run: Run, out: Path) -> None:
    paths = [out, *out.rglob("*")]
    root_owned = [str(p) for p in paths if p.stat().st_uid == 0 and p != out]
    record.check(not root_owned, f"{run.name}: no file owned by root", ", ".join(root_owned))
    foreign = [str(p) for p in paths if p.stat().st_uid != UID]
    record.check(not foreign, f"{run.name}: every output belongs to --user {UID}", str(foreign))
    unreadable = [str(p) for p in paths[1:] if not p.stat().st_mode & 0o004]
    record.check(not unreadable, f"{run.name}: outputs readable by others (0644)", str(unreadable))


def host_reference(record: Record, cases: Path, workdir: Path) -> None:
    """The same cases through the host's .venv, for a like-for-like time per case."""
    out = workdir / "out-host"
    cmd = [str(Path(sys.executable).with_name("brats-goat")), "predict", str(cases), str(out)]
    start = time.perf_counter()
    sh([*cmd, "--device", "cpu", "--quiet"], timeout=1800)
    wall = time.perf_counter() - start
    run = Run(name="host .venv, same cases (reference)", args=cmd, rc=0, log="", wall_s=wall)
    record.add_run(run, json.loads((out / "report.json").read_text()))


def run_all(record: Record, workdir: Path, n_cases: int) -> None:
    """Every organiser-style run, and its checks."""
    cases, mixed, broken = make_cases(workdir, n_cases)
    ids = sorted(p.name for p in cases.iterdir())

    out = make_dir(workdir / "out-plain", owner=UID)
    run = docker_run("organiser form (no arguments)", cases, out, [])
    record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
    record.check(
        CPU_WARNING in run.log, f"{run.name}: CPU-fallback warning in the log", run.log[-2000:]
    )
    check_outputs(record, run, cases, out, ids, {"report.json"})
    report = json.loads((out / "report.json").read_text())
    record.check(
        report["summary"] == {"cases": n_cases, "succeeded": n_cases, "failed": 0}
        and report["device"] == "cpu",
        f"{run.name}: report.json lists every case as ok, device cpu",
        json.dumps(report["summary"]),
    )
    record.add_run(run, report)

    out = make_dir(workdir / "out-mlcube", owner=UID)
    run = docker_run(
        "MLCube form with a broken case",
        mixed,
        out,
        ["infer", "--data_path=/mlcube_io0", "--output_path=/mlcube_io2"],
        mounts=("/mlcube_io0", "/mlcube_io2"),
    )
    record.check(run.rc == 1, f"{run.name}: exit 1", f"exit {run.rc}: {run.log[-3000:]}")
    record.check(
        f"FAILED {broken}" in run.log and f"{broken}-t1c.nii.gz" in run.log,
        f"{run.name}: the log names the broken case and its file",
        run.log[-3000:],
    )
    check_outputs(record, run, mixed, out, [ids[0]], {"report.json"})
    report = json.loads((out / "report.json").read_text())
    status = {c["case_id"]: c for c in report["cases"]}
    record.check(
        status[broken]["status"] == "failed" and broken in status[broken]["error"],
        f"{run.name}: report.json marks the broken case failed with its reason",
    )
    record.add_run(run, report)

    out = make_dir(workdir / "out-shards", owner=UID)
    for k in (1, 2):
        run = docker_run(
            f"shard {k}/2 (--method intensity)",
            cases,
            out,
            ["--shard", f"{k}/2", "--method", "intensity", "--quiet"],
        )
        record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
        shard_report = json.loads((out / f"report-shard-{k}-of-2.json").read_text())
        record.add_run(run, shard_report)
    run = docker_run("merge-reports", cases, out, ["brats-goat", "merge-reports", "/output"])
    record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
    shard_reports = {"report.json", "report-shard-1-of-2.json", "report-shard-2-of-2.json"}
    check_outputs(record, run, cases, out, ids, shard_reports)
    merged = json.loads((out / "report.json").read_text())
    record.check(
        [c["case_id"] for c in merged["cases"]] == ids and len(merged["shards"]) == 2,
        "merge-reports: the two shards together cover every case once",
    )

    out = make_dir(workdir / "out-usage", owner=UID)
    run = docker_run("bad --shard", cases, out, ["--shard", "3/2"])
    record.check(
        run.rc == 2 and "between 1 and 2" in run.log,
        f"{run.name}: usage error, exit 2 with the reason",
        f"exit {run.rc}: {run.log[-2000:]}",
    )
    locked = make_dir(workdir / "out-locked", owner=UID + 1)
    run = docker_run("output not writable by --user", cases, locked, [])
    record.check(
        run.rc == 2 and "cannot write to /output" in run.log and "--user" in run.log,
        f"{run.name}: exit 2 with a message naming --user",
        f"exit {run.rc}: {run.log[-2000:]}",
    )
    run = docker_run("--help", cases, out, ["--help"])
    record.check(
        run.rc == 0 and "infer --data_path" in run.log and "--shard K/N" in run.log,
        "--help: exit 0, documents the organiser, MLCube and shard forms",
    )
    record.check(not any(out.iterdir()), "usage errors write nothing to the output")
    host_reference(record, cases, workdir)


def remove_test_image(started_engine: bool) -> None:
    """Drop the test image; on an engine started here, also the build's dangling layers."""
    subprocess.run(["docker", "image", "rm", IMAGE], capture_output=True, check=False)
    if started_engine:
        subprocess.run(["docker", "image", "prune", "--force"], capture_output=True, check=False)


def environment_lines() -> list[str]:
    commit = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain"], check=False).stdout.strip()
    server = sh(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout
    driver = sh(["docker", "info", "--format", "{{.Driver}}"], check=False).stdout
    return [
        f"- commit `{commit.strip()}`{' (with uncommitted changes)' if dirty else ''}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {os.cpu_count()} CPU cores, no GPU, {platform.platform()}; load average "
        f"{os.getloadavg()[0]:.1f} at the start (the cores are shared with other jobs)",
        f"- Docker engine {server.strip()}, storage driver {driver.strip()}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="phantom cases (at least 2)")
    parser.add_argument("--extras", default=os.environ.get("EXTRAS", ""), help="pip extras")
    parser.add_argument("--no-cache", action="store_true", help="build without layer cache")
    parser.add_argument("--log", type=Path, default=ROOT / "build" / "container-test.md")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder and the test image"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="brats-goat-container-test-"))
    workdir.chmod(0o755)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    record = Record()
    daemon = None
    try:
        daemon = start_engine(workdir)
        record.env = environment_lines()
        base = build_base(record)
        build_wheelhouse(args.extras)
        build_image(base, args.extras, args.no_cache, workdir, record)
        run_all(record, workdir, max(2, args.cases))
    except (TestFailure, subprocess.TimeoutExpired) as exc:
        args.log.write_text(record.markdown(False, str(exc)))
        print(
            f"\nCONTAINER TEST FAILED: {exc}\nlog: {args.log}  work folder: {workdir}",
            file=sys.stderr,
        )
        return 1
    finally:
        if not args.keep and engine_running():
            remove_test_image(daemon is not None)
        stop_engine(daemon)
    args.log.write_text(record.markdown(True))
    print(f"\ncontainer test passed ({len(record.checks)} checks); log: {args.log}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
