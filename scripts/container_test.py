"""Real local test of the challenge container, run the way organisers run it.

1. A Docker engine: the running one, else ``dockerd`` is installed (apt, docker.io) if
   missing and started here (vfs storage, no iptables), and stopped again at the end.
2. A base image built locally (``docker/local-base.sh``: debootstrap Debian + Python + the
   CPU torch wheel), reused when its recipe hash is unchanged.
3. Wheels of brats-goat and its dependencies built on the host into ``docker/wheelhouse``,
   then the repository's ``Dockerfile`` built with that base, offline (``--network none``).
4. Phantom cases from ``brats-goat synth``, segmented by ``docker run --network none`` with a
   read-only ``/input`` and ``--user`` of a non-root uid, in each entry form: no arguments,
   MLCube ``infer``, the strict switch, ``--shard K/N`` + ``merge-reports`` with a report
   folder, ``--help``, usage errors.
5. Checks: one ``<ID>.nii.gz`` per input case and nothing else in the output folder (an
   empty, FAILED-marked one for a broken case), geometry equal to the input, labels in
   {0,1,2,3}, the broken case named in the log and the report, the report in the log and in
   the report folder, the CPU-fallback warning, no file owned by root, the image's torch
   equal to the tests' pin.
6. The official BraTS orchestrator (PyPI ``brats``, pinned in ``.venv-brats``) on the same
   image, through ``scripts/orchestrator_driver.py``: both year forms (2025+ plain, 2024
   MLCube), ``infer_single`` and ``infer_batch`` (one good and one truncated case), run as
   root and as a non-root user; every good case must come back with the input's geometry.
Build time, image size and seconds per run and case go to a Markdown log.

Any problem, including an engine that cannot start or a missing ``brats`` package, fails the
test (exit 1): it never passes by skipping.

``--build-only --tag TAG`` (``make image``) stops after step 3 and keeps the image under TAG,
for use by hand; an engine it had to start is left running, so that the image can be run.

    python scripts/container_test.py [--cases 3] [--no-cache] [--keep] [--log FILE.md]
    python scripts/container_test.py --build-only --tag brats-goat:local [--no-cache]
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

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the copy pip itself vendors
    from pip._vendor import tomli as tomllib

import nibabel as nib
import numpy as np

from brats_goat.run.placeholder import is_placeholder
from brats_goat.run.report import REPORT_BEGIN, REPORT_END

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "brats-goat:container-test"
TEST_LABEL = "brats-goat.container-test=1"
UID = 4242  # the "host user" the container runs as: any non-root uid
TORCH_PIN = "torch==2.13.0"
#: The official orchestrator's version, as the Makefile installs it into .venv-brats.
BRATS_PIN = "0.1.14"
#: Where the container writes its report when asked to (the docs' example mount).
REPORTS = "/reports"
#: Axial slices of the phantoms given to the orchestrator (8 runs; a whole head each would
#: add minutes of CPU time and test nothing more about how the orchestrator runs us).
ORCHESTRATOR_DEPTH = 40
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
    stderr: str = ""


@dataclass
class Record:
    """What the Markdown log reports: environment, builds, runs, per-case times, checks."""

    env: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    orchestrator: list[str] = field(default_factory=list)
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
            "`/mlcube_io2`; with a report folder: `-v REPORTS:/reports "
            "-e BRATS_GOAT_REPORT_DIR=/reports`). No `--gpus`: the machine has none.",
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
            "## The official orchestrator",
            "",
            f"`brats=={BRATS_PIN}` (in `.venv-brats`) driving the image through "
            "`SegmentationAlgorithmWith4Modalities` with our algorithm entry "
            "(`scripts/orchestrator_driver.py`); the batch is one good and one truncated case. "
            "Wall time includes the orchestrator's copying and checks and the container start.",
            "",
            "| orchestrator user | year form | call | cases | wall time |",
            "|---|---|---|---|---|",
            *self.orchestrator,
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


def build_requirements() -> list[str]:
    """pyproject.toml's build-system requirements, so that the wheelhouse never holds an
    older setuptools than the one the metadata needs (offline, pip can fetch no other)."""
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"])


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
        # The build backend too: the offline image build installs brats-goat from source.
        targets = [target, *build_requirements()]
        sh([*pip_wheel, str(wheelhouse), "--constraint", constraints, *targets])
    finally:
        os.unlink(constraints)
    for wheel in wheelhouse.glob("torch-*.whl"):  # the base image provides torch
        wheel.unlink()
    return wheelhouse


def build_image(
    base: str, extras: str, no_cache: bool, workdir: Path, record: Record, tag: str = IMAGE
) -> None:
    args = ["docker", "build", "--network", "none", "--tag", tag, "--label", TEST_LABEL]
    args += ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1"]
    # The base holds the CPU build of the pinned release: no torch index (offline), and the
    # release without the Dockerfile's CUDA label, which that build satisfies as it is.
    args += ["--build-arg", f"TORCH={TORCH_PIN}", "--build-arg", "TORCH_INDEX_URL="]
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
    size = image_size(tag)
    note = f" ({cached} steps from the layer cache)" if cached else " (no layer cache)"
    record.builds.append(
        f"| image (`Dockerfile`, offline){note} | `{tag}` | {seconds:.0f} s | {size / 1e9:.2f} GB |"
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
    name: str,
    inp: Path,
    out: Path,
    args: Sequence[str],
    *,
    mounts: tuple[str, str] | None = None,
    reports: Path | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """``docker run`` as organisers do: no network, read-only input, a non-root --user;
    ``reports``: a report folder mounted at /reports and named in BRATS_GOAT_REPORT_DIR."""
    in_mount, out_mount = mounts or ("/input", "/output")
    cmd = ["docker", "run", "--rm", "--network", "none", "--user", f"{UID}:{UID}"]
    cmd += ["-v", f"{inp}:{in_mount}:ro", "-v", f"{out}:{out_mount}"]
    if reports is not None:
        cmd += ["-v", f"{reports}:{REPORTS}", "-e", f"BRATS_GOAT_REPORT_DIR={REPORTS}"]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    cmd += [IMAGE, *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    print(f"- {name}: exit {proc.returncode} in {wall:.1f} s", flush=True)
    return Run(name=name, args=cmd, rc=proc.returncode, log=log, wall_s=wall, stderr=proc.stderr)


def make_dir(path: Path, owner: int | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def break_case(src: Path, dst_root: Path, new_id: str, keep_bytes) -> Path:
    """A copy of case ``src`` named ``new_id`` whose t1c and t2f are cut to
    ``keep_bytes(size)`` bytes (one corrupt file is left out like a missing sequence; with
    neither of the two the case fails)."""
    folder = dst_root / new_id
    folder.mkdir(parents=True)
    for path in sorted(src.glob("*.nii.gz")):
        data = path.read_bytes()
        if path.name.endswith(("-t1c.nii.gz", "-t2f.nii.gz")):
            data = data[: keep_bytes(len(data))]
        (folder / path.name.replace(src.name, new_id)).write_bytes(data)
    return folder


def slab_case(src: Path, dst_root: Path, depth: int) -> Path:
    """A copy of phantom ``src`` cut to the ``depth`` axial slices around its tumour, the
    affine moved with the cut (nibabel's slicer): the orchestrator runs need whole cases,
    not whole heads, and the model's time grows with the number of slices."""
    seg = nib.load(next(src.glob("*-seg.nii.gz")))
    z = np.flatnonzero(np.asarray(seg.dataobj).any(axis=(0, 1)))
    centre = int(z.mean()) if z.size else seg.shape[2] // 2
    z0 = min(max(0, centre - depth // 2), seg.shape[2] - depth)
    folder = dst_root / src.name
    folder.mkdir(parents=True)
    for path in sorted(src.glob("*.nii.gz")):
        nib.save(nib.load(path).slicer[:, :, z0 : z0 + depth], folder / path.name)
    return folder


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
    break_case(cases / ids[1], mixed, broken, lambda size: 600)
    for path in workdir.rglob("*"):  # readable by the container's uid
        path.chmod(0o755 if path.is_dir() else 0o644)
    return cases, mixed, broken


def report_from_log(record: Record, run: Run) -> dict:
    """The full report the container prints between the marker lines."""
    record.check(
        REPORT_BEGIN in run.log and REPORT_END in run.log,
        f"{run.name}: the full report is in the log",
        run.log[-2000:],
    )
    text = run.log.split(REPORT_BEGIN, 1)[1].split(REPORT_END, 1)[0]
    return json.loads(text)


def input_image(case_dir: Path) -> nib.Nifti1Image:
    """The grid every output must have (t1n: the broken cases' t1c and t2f are cut short)."""
    return nib.load(next(case_dir.glob("*-t1n.nii.gz")))


def check_label_map(
    record: Record, name: str, pred_path: Path, ref_case: Path, empty: bool = False
) -> None:
    """Geometry equal to the input (shape, affine, codes), uint8, labels in {0,1,2,3}; an
    ``empty`` one must be the all-zero placeholder of a failed case."""
    case_id = pred_path.name.removesuffix(".nii.gz")
    ref, pred = input_image(ref_case), nib.load(pred_path)
    labels = np.asarray(pred.dataobj)
    same = (
        pred.shape == ref.shape
        and np.allclose(pred.affine, ref.affine, atol=1e-5)
        and int(pred.header["qform_code"]) == int(ref.header["qform_code"])
        and int(pred.header["sform_code"]) == int(ref.header["sform_code"])
    )
    record.check(same, f"{name}: {case_id} geometry equals the input (shape, affine, codes)")
    valid = pred.get_data_dtype() == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    record.check(valid, f"{name}: {case_id} is uint8 with labels in {{0,1,2,3}}")
    if empty:
        record.check(
            not labels.any() and is_placeholder(pred_path),
            f"{name}: {case_id} (failed) is an all-zero label map marked FAILED in its header",
        )
    else:
        record.check(not is_placeholder(pred_path), f"{name}: {case_id} is a real segmentation")


def check_outputs(
    record: Record,
    run: Run,
    inp: Path,
    out: Path,
    expected: Sequence[str],
    placeholders: Sequence[str] = (),
) -> None:
    """One label map per input case (an empty one for each failed case) and nothing else."""
    names = {p.name for p in out.iterdir()}
    wanted = {f"{case_id}.nii.gz" for case_id in [*expected, *placeholders]}
    record.check(
        names == wanted,
        f"{run.name}: one <ID>.nii.gz per input case in the output folder, nothing else",
        f"found {sorted(names)}, expected {sorted(wanted)}",
    )
    for case_id in expected:
        check_label_map(record, run.name, out / f"{case_id}.nii.gz", inp / case_id)
    for case_id in placeholders:
        check_label_map(record, run.name, out / f"{case_id}.nii.gz", inp / case_id, empty=True)
    check_ownership(record, run.name, out)


def check_ownership(record: Record, name: str, out: Path, owner: int = UID) -> None:
    paths = [out, *out.rglob("*")]
    if owner != 0:
        root_owned = [str(p) for p in paths if p.stat().st_uid == 0 and p != out]
        record.check(not root_owned, f"{name}: no file owned by root", ", ".join(root_owned))
    foreign = [str(p) for p in paths if p.stat().st_uid != owner]
    record.check(not foreign, f"{name}: every output belongs to uid {owner}", str(foreign))
    unreadable = [str(p) for p in paths[1:] if not p.stat().st_mode & 0o004]
    record.check(not unreadable, f"{name}: outputs readable by others (0644)", str(unreadable))


def host_reference(record: Record, cases: Path, workdir: Path) -> None:
    """The same cases through the host's .venv with the host's defaults, for a like-for-like
    time per case: the image must run the same default (no refinement, float32), which
    ``run_plain`` checks against this run's report."""
    out = workdir / "out-host"
    cmd = [str(Path(sys.executable).with_name("brats-goat")), "predict", str(cases), str(out)]
    start = time.perf_counter()
    sh([*cmd, "--device", "cpu", "--quiet"], timeout=1800)
    wall = time.perf_counter() - start
    run = Run(
        name="host .venv, same cases, defaults (reference)",
        args=cmd,
        rc=0,
        log="",
        wall_s=wall,
    )
    record.add_run(run, json.loads((out / "report.json").read_text()))


def run_plain(record: Record, workdir: Path, cases: Path, ids: list[str]) -> None:
    """No arguments: label maps only in /output, the report in the log, CPU fallback."""
    out = make_dir(workdir / "out-plain", owner=UID)
    run = docker_run("organiser form (no arguments)", cases, out, [])
    record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
    record.check(
        CPU_WARNING in run.log, f"{run.name}: CPU-fallback warning in the log", run.log[-2000:]
    )
    check_outputs(record, run, cases, out, ids)
    report = report_from_log(record, run)
    ran = {k: report.get(k) for k in ("refine", "precision")}
    record.check(
        ran == {"refine": "none", "precision": "float32"},
        f"{run.name}: the host's default (no refinement, float32)",
        str(ran),
    )
    record.check(
        report["summary"] == {"cases": len(ids), "succeeded": len(ids), "failed": 0}
        and report["device"] == "cpu",
        f"{run.name}: the report lists every case as ok, device cpu",
        json.dumps(report["summary"]),
    )
    pin = TORCH_PIN.split("==")[1]
    record.check(
        report["torch_version"].split("+")[0] == pin,
        f"{run.name}: the image runs torch {pin}, the version every test runs",
        report["torch_version"],
    )
    record.add_run(run, report)


def run_broken(record: Record, workdir: Path, mixed: Path, good: str, broken: str) -> None:
    """MLCube form with a broken case, then the strict switch on the same input."""
    out = make_dir(workdir / "out-mlcube", owner=UID)
    reports = make_dir(workdir / "reports-mlcube", owner=UID)
    mlcube = ["infer", "--data_path=/mlcube_io0", "--output_path=/mlcube_io2"]
    run = docker_run(
        "MLCube form with a broken case, report folder",
        mixed, out, mlcube, mounts=("/mlcube_io0", "/mlcube_io2"), reports=reports,
    )  # fmt: skip
    record.check(run.rc == 0, f"{run.name}: exit 0 (every case has its file)", run.log[-3000:])
    record.check(
        f"FAILED {broken}" in run.log and f"{broken}-t1c.nii.gz" in run.log,
        f"{run.name}: the log names the broken case and its file",
        run.log[-3000:],
    )
    record.check(
        run.stderr == "",
        f"{run.name}: one ordered stream (nothing on stderr), so no message can cut the "
        "report's JSON in a log that joins both",
        run.stderr[-2000:],
    )
    check_outputs(record, run, mixed, out, [good], [broken])
    report = json.loads((reports / "report.json").read_text())
    record.check(
        sorted(p.name for p in reports.iterdir()) == ["report.json"]
        and report == report_from_log(record, run),
        f"{run.name}: the report folder holds report.json, the same report as the log's",
    )
    status = {c["case_id"]: c for c in report["cases"]}
    record.check(
        status[broken]["status"] == "failed"
        and broken in status[broken]["error"]
        and status[broken]["placeholder"] == f"/mlcube_io2/{broken}.nii.gz",
        f"{run.name}: the report marks the broken case failed, with its reason and placeholder",
    )
    check_ownership(record, f"{run.name} (report folder)", reports)
    record.add_run(run, report)

    out = make_dir(workdir / "out-strict", owner=UID)
    run = docker_run(
        "BRATS_GOAT_STRICT=1 with a broken case (--method intensity)",
        mixed, out, ["--method", "intensity"], env={"BRATS_GOAT_STRICT": "1"},
    )  # fmt: skip
    record.check(
        run.rc == 1 and f"FAILED {broken}" in run.log,
        f"{run.name}: exit 1, the broken case named",
        f"exit {run.rc}: {run.log[-3000:]}",
    )
    check_outputs(record, run, mixed, out, [good])
    record.add_run(run, report_from_log(record, run))


def run_shards(record: Record, workdir: Path, cases: Path, ids: list[str]) -> None:
    """Two shards sharing one /output and one report folder, then merge-reports."""
    out = make_dir(workdir / "out-shards", owner=UID)
    reports = make_dir(workdir / "reports-shards", owner=UID)
    run = docker_run("--shard without a report folder", cases, out, ["--shard", "1/2"])
    record.check(
        run.rc == 2 and "BRATS_GOAT_REPORT_DIR" in run.log,
        f"{run.name}: usage error, exit 2, naming BRATS_GOAT_REPORT_DIR",
        f"exit {run.rc}: {run.log[-2000:]}",
    )
    for k in (1, 2):
        args = ["--shard", f"{k}/2", "--method", "intensity", "--quiet"]
        run = docker_run(f"shard {k}/2 (--method intensity)", cases, out, args, reports=reports)
        record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
        record.add_run(run, json.loads((reports / f"report-shard-{k}-of-2.json").read_text()))
    merge = ["brats-goat", "merge-reports", REPORTS, "--outputs", "/output"]
    run = docker_run("merge-reports", cases, out, merge, reports=reports)
    record.check(run.rc == 0, f"{run.name}: exit 0", run.log[-3000:])
    check_outputs(record, run, cases, out, ids)
    names = sorted(p.name for p in reports.iterdir())
    record.check(
        names == ["report-shard-1-of-2.json", "report-shard-2-of-2.json", "report.json"],
        "shards: their reports and the merged one are in the report folder",
        str(names),
    )
    merged = json.loads((reports / "report.json").read_text())
    record.check(
        [c["case_id"] for c in merged["cases"]] == ids and len(merged["shards"]) == 2,
        "merge-reports: the two shards together cover every case once",
    )


def run_usage_errors(record: Record, workdir: Path, cases: Path) -> None:
    out = make_dir(workdir / "out-usage", owner=UID)
    reports = make_dir(workdir / "reports-usage", owner=UID)
    run = docker_run("bad --shard", cases, out, ["--shard", "3/2"], reports=reports)
    record.check(
        run.rc == 2 and "between 1 and 2" in run.log,
        f"{run.name}: usage error, exit 2 with the reason",
        f"exit {run.rc}: {run.log[-2000:]}",
    )
    locked = make_dir(workdir / "out-locked", owner=UID + 1)
    run = docker_run("output not writable by --user", cases, locked, [])
    record.check(
        run.rc == 2 and "cannot write to output folder /output" in run.log and "--user" in run.log,
        f"{run.name}: exit 2 with a message naming --user",
        f"exit {run.rc}: {run.log[-2000:]}",
    )
    run = docker_run("--help", cases, out, ["--help"])
    record.check(
        run.rc == 0 and "infer --data_path" in run.log and "--shard K/N" in run.log,
        "--help: exit 0, documents the organiser, MLCube and shard forms",
    )
    record.check(
        not any(out.iterdir()) and not any(reports.iterdir()),
        "usage errors write nothing to the output or report folder",
    )


def orchestrator_log_report(log_file: Path) -> dict | None:
    """Our report as it reaches the orchestrator's log file (brats logs the container's
    output at DEBUG level, its chunks joined by "\\n\\r": undone before parsing)."""
    text = log_file.read_bytes().decode(errors="replace").replace("\n\r", "")
    if REPORT_BEGIN not in text or REPORT_END not in text:
        return None
    return json.loads(text.split(REPORT_BEGIN, 1)[1].split(REPORT_END, 1)[0])


def check_orchestrator_batch(
    record: Record, name: str, run: dict, batch: Path, good: str, broken: str, uid: int
) -> None:
    """The good case returned, the broken one an empty placeholder, the failure in the log."""
    out = Path(run["output"])
    names = sorted(p.name for p in out.iterdir())
    record.check(
        names == sorted([f"{good}.nii.gz", f"{broken}.nii.gz"]),
        f"{name}: every case returned under the user's names (good and broken)",
        str(names),
    )
    check_label_map(record, name, out / f"{good}.nii.gz", batch / good)
    check_label_map(record, name, out / f"{broken}.nii.gz", batch / broken, empty=True)
    check_ownership(record, name, out, owner=uid)
    log = Path(run["log"])
    report = orchestrator_log_report(log)
    record.check(report is not None, f"{name}: our full report is in the orchestrator's log")
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    record.check(
        report["summary"] == {"cases": 2, "succeeded": 1, "failed": 1}
        and "-t1c.nii.gz" in failed[0]["error"],
        f"{name}: the report names the failed case and its t1c file",
        json.dumps(report["summary"]),
    )
    record.check(
        f"subject {broken} contains only zeros" in log.read_text(errors="replace"),
        f"{name}: the orchestrator's own log warns that {broken}'s output is empty",
    )


def check_orchestrator(
    record: Record, who: str, uid: int, results: dict, single: Path, batch: Path, broken: str
) -> None:
    """Every run returned; outputs valid; batch and single agree on the good case."""
    labels: dict[int, np.ndarray] = {}
    for run in results["runs"]:
        form = "plain" if run["year"] >= 2025 else "MLCube"
        name = f"orchestrator as {who}, {run['year']} ({form}) {run['mode']}"
        n = 1 if run["mode"] == "infer_single" else 2
        record.orchestrator.append(
            f"| {who} | {run['year']} ({form}) | {run['mode']} | {n} | {run['wall_s']} s |"
        )
        record.check(run["ok"], f"{name}: brats returned without an exception", run["error"])
        if run["mode"] == "infer_single":
            out = Path(run["output"])
            check_label_map(record, name, out, single)
            check_ownership(record, name, out.parent, owner=uid)
            labels[run["year"]] = np.asarray(nib.load(out).dataobj)
            continue
        check_orchestrator_batch(record, name, run, batch, single.name, broken, uid)
        good = np.asarray(nib.load(Path(run["output"]) / f"{single.name}.nii.gz").dataobj)
        record.check(
            np.array_equal(good, labels[run["year"]]),
            f"{name}: the good case's labels equal infer_single's",
        )


def socket_gid() -> int:
    """Group of the Docker socket: what a non-root user needs to reach the engine."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return os.stat(host.removeprefix("unix://")).st_gid


def run_orchestrator(
    record: Record, workdir: Path, cases: Path, ids: list[str], python: Path
) -> None:
    """The pinned ``brats`` package on the image, as root and as uid UID."""
    python = python.absolute()
    if not python.is_file():
        raise TestFailure(
            f"{python} not found: the orchestrator venv is missing (make setup-brats installs "
            f"brats=={BRATS_PIN} into .venv-brats)"
        )
    slabs = make_dir(workdir / "orchestrator-slabs")
    good = slab_case(cases / ids[0], slabs, ORCHESTRATOR_DEPTH)
    batch = make_dir(workdir / "orchestrator-batch")
    shutil.copytree(good, batch / ids[0])
    broken = f"{ids[1]}-truncated"
    break_case(
        slab_case(cases / ids[1], slabs, ORCHESTRATOR_DEPTH), batch, broken, lambda n: n // 2
    )
    for path in [*slabs.rglob("*"), *batch.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for who, uid in (("root", 0), (f"uid {UID}", UID)):
        work = make_dir(workdir / f"orchestrator-{uid}", owner=uid)
        env = {**os.environ, "HOME": str(work), "TMPDIR": str(make_dir(work / "tmp", uid))}
        cmd = [str(python), str(ROOT / "scripts" / "orchestrator_driver.py"), "--image", IMAGE]
        cmd += ["--single", str(good), "--batch", str(batch)]
        cmd += ["--work", str(work), "--json", str(work / "runs.json")]
        if uid:  # util-linux's setpriv: the uid, its group and the socket's group, no caps
            groups = f"--groups={socket_gid()}"
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", groups, "--", *cmd]
        print(f"orchestrator (brats=={BRATS_PIN}) as {who}:", flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        except OSError as exc:
            raise TestFailure(f"orchestrator as {who}: cannot start {cmd[0]}: {exc}") from exc
        (work / "driver.log").write_text(proc.stdout + proc.stderr)
        print(proc.stdout, end="", flush=True)
        record.check(
            proc.returncode == 0,
            f"orchestrator as {who}: the driver ran",
            f"exit {proc.returncode} (as uid {uid} it needs to run {python} and read "
            f"{ROOT / 'scripts'}; if the venv's interpreter lies where that user cannot go, "
            f"remake it: make BRATS_PYTHON=/usr/bin/python3 setup-brats):\n"
            f"{(proc.stdout + proc.stderr)[-3000:]}",
        )
        results = json.loads((work / "runs.json").read_text())
        check_orchestrator(record, who, uid, results, good, batch, broken)


def run_all(record: Record, workdir: Path, n_cases: int, orchestrator_python: Path) -> None:
    """Every organiser-style run, and its checks."""
    cases, mixed, broken = make_cases(workdir, n_cases)
    ids = sorted(p.name for p in cases.iterdir())
    run_plain(record, workdir, cases, ids)
    run_broken(record, workdir, mixed, ids[0], broken)
    run_shards(record, workdir, cases, ids)
    run_usage_errors(record, workdir, cases)
    run_orchestrator(record, workdir, cases, ids, orchestrator_python)
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


def build_only(tag: str, extras: str, no_cache: bool) -> int:
    """Steps 1-3 only: the image the test runs, kept under ``tag`` (``make image``). Its
    build log and an engine's log stay in build/image/."""
    workdir = ROOT / "build" / "image"
    workdir.mkdir(parents=True, exist_ok=True)
    record = Record()
    start = time.perf_counter()
    daemon = None
    try:
        daemon = start_engine(workdir)
        base = build_base(record)
        build_wheelhouse(extras)
        build_image(base, extras, no_cache, workdir, record, tag=tag)
    except (TestFailure, subprocess.TimeoutExpired) as exc:
        stop_engine(daemon)
        print(f"\nIMAGE BUILD FAILED: {exc}\nlogs: {workdir}", file=sys.stderr)
        return 1
    print("\n| what | tag | time | size |\n|---|---|---|---|", *record.builds, sep="\n")
    print(f"\nbuilt {tag} offline in {time.perf_counter() - start:.0f} s (build log: {workdir}).")
    print("It holds the CPU build of torch: a GPU image needs the online `docker build .`.")
    print("Run it (IN: one folder per case; OUT: writable by you):\n")
    print(
        f'    docker run --rm --network none --user "$(id -u):$(id -g)" '
        f"-v IN:/input:ro -v OUT:/output {tag}\n"
    )
    if daemon is not None:
        print(f"The Docker engine started for this build (dockerd, pid {daemon.pid}) still runs;")
        print(f"stop it with: kill {daemon.pid}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="phantom cases (at least 2)")
    parser.add_argument("--extras", default=os.environ.get("EXTRAS", ""), help="pip extras")
    parser.add_argument("--no-cache", action="store_true", help="build without layer cache")
    parser.add_argument("--log", type=Path, default=ROOT / "build" / "container-test.md")
    parser.add_argument(
        "--orchestrator-python",
        type=Path,
        default=ROOT / ".venv-brats" / "bin" / "python",
        help=f"python of the venv holding brats=={BRATS_PIN} (make setup-brats)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder and the test image"
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the image as the test does, keep it under --tag and run nothing",
    )
    parser.add_argument("--tag", help="the image's tag for --build-only (e.g. brats-goat:local)")
    args = parser.parse_args()
    if args.build_only or args.tag:
        if not (args.build_only and args.tag):
            parser.error("--build-only and --tag go together")
        return build_only(args.tag, args.extras, args.no_cache)
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
        run_all(record, workdir, max(2, args.cases), args.orchestrator_python)
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
