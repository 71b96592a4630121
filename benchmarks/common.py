"""What the benchmark scripts share: the environment record (incl. allocator and OpenMP settings), the default
and tuned child environments, the child-process runner and the result-writing helpers.

The scripts import it as `import common` (a script's own folder is on sys.path when it runs as
`python benchmarks/x.py`; the tests get it from pytest's `pythonpath`).
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import inspect
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1 << 30
# environment variables recorded with every result, and those the "default" environment goes without
ENV_KEYS_PREFIXES = ("MALLOC_", "OMP_", "MKL_", "KMP_", "GOMP_", "LD_PRELOAD", "THP_", "TORCH_", "PYTORCH_")
TUNING_PREFIXES = ("MALLOC_", "OMP_WAIT_POLICY", "KMP_", "GOMP_", "LD_PRELOAD", "THP_MEM_ALLOC_ENABLE")
# Serve every size from the heap (never mmap), never give freed memory back: big tensors then reuse
# already-faulted pages. Older glibc caps MALLOC_MMAP_THRESHOLD_ at 32 MiB; MALLOC_MMAP_MAX_=0 covers that
# case (threshold_probe() records what this glibc accepts). OpenMP threads spin briefly before they sleep
# (libgomp's default, written out so that it is recorded): OMP_WAIT_POLICY=PASSIVE, which make exports for
# shared machines, wakes a sleeping thread for every parallel op, ~80 us each on 2 cores, and made a bf16
# decode step of the deep DeepPyramidion 1.4x slower (results/decode_cache_passive.md); training steps did
# not change.
TUNED_SETTINGS = {
    "GOMP_SPINCOUNT": "300000",
    "MALLOC_MMAP_THRESHOLD_": str(64 * GIB),
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(64 * GIB),
}


# ---- environment record ------------------------------------------------------------------------------------


def malloc_probe() -> dict[str, object]:
    """Does glibc serve a 16, 64 and 256 MiB posix_memalign (torch's CPU allocation) with mmap?

    An mmapped block is unmapped on free and page-faulted again on the next allocation. Self-contained (runs
    in a bare interpreter, see threshold_probe).
    """
    import ctypes
    import ctypes.util
    import platform

    libc_name = ctypes.util.find_library("c")
    if not libc_name or platform.libc_ver()[0] != "glibc":
        return {"glibc": False}
    libc = ctypes.CDLL(libc_name)
    fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (*fields, "keepcost")]

    if not hasattr(libc, "mallinfo2"):
        return {"glibc": True, "mallinfo2": False}
    libc.mallinfo2.restype = MallInfo2
    result: dict[str, object] = {"glibc": True, "version": platform.libc_ver()[1]}
    for mib in (16, 64, 256):
        before = libc.mallinfo2().hblkhd
        ptr = ctypes.c_void_p()
        libc.posix_memalign(ctypes.byref(ptr), 64, ctypes.c_size_t(mib << 20))
        result[f"{mib}MiB_mmapped"] = libc.mallinfo2().hblkhd - before >= (mib << 20)
        libc.free(ptr)
    return result


def threshold_probe(base: dict[str, str]) -> dict[str, object]:
    """Which glibc settings take effect: is a 16 / 64 / 256 MiB tensor still mmapped under each?"""
    probes: dict[str, object] = {}
    settings = [("default", {}), ("MALLOC_MMAP_MAX_=0", {"MALLOC_MMAP_MAX_": "0"})] + [
        (f"MALLOC_MMAP_THRESHOLD_={v}", {"MALLOC_MMAP_THRESHOLD_": str(v)})
        for v in (32 << 20, 64 << 20, GIB, 64 * GIB)
    ]
    script = inspect.getsource(malloc_probe) + "\nprint(__import__('json').dumps(malloc_probe()))"
    for name, extra in settings:
        env = {k: v for k, v in base.items() if not k.startswith("MALLOC_")}
        env.update(extra)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            probes[name] = out.stderr[-300:]
            continue
        probe = json.loads(out.stdout)
        probes[name] = {mib: probe.get(f"{mib}MiB_mmapped") for mib in (16, 64, 256)}
    return probes


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                platform.processor(),
            )
    except OSError:
        return platform.processor()


def _transparent_hugepage() -> dict[str, str | None]:
    settings: dict[str, str | None] = {}
    for name in ("enabled", "defrag"):
        try:
            settings[name] = Path(f"/sys/kernel/mm/transparent_hugepage/{name}").read_text().strip()
        except OSError:
            settings[name] = None
    return settings


def environment(device: str = "cpu") -> dict[str, Any]:
    """Library versions, threads, CPU model, allocator-relevant variables and allocator behaviour; with
    device "cuda", the GPU too."""
    import transformers

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "env": {key: value for key, value in sorted(os.environ.items()) if key.startswith(ENV_KEYS_PREFIXES)},
        "malloc": malloc_probe(),
        "jemalloc": ctypes.util.find_library("jemalloc"),
        "tcmalloc": ctypes.util.find_library("tcmalloc"),
        "transparent_hugepage": _transparent_hugepage(),
        "parallel_info": torch.__config__.parallel_info().splitlines()[:6],
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            cuda_device=props.name, cuda_memory_gib=props.total_memory / GIB, cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )  # fmt: skip
    return env


# ---- child environments ------------------------------------------------------------------------------------


def stripped_keys() -> list[str]:
    """The allocator / OpenMP tuning variables of this process (make exports OMP_WAIT_POLICY=PASSIVE)."""
    return sorted(key for key in os.environ if key.startswith(TUNING_PREFIXES))


def child_env(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(environment for a child, the tuning settings applied) for "default" (this environment without
    allocator / OpenMP tuning), "tuned" (TUNED_SETTINGS) or "jemalloc" (tuned, jemalloc instead of glibc)."""
    removed = set(stripped_keys())
    env = {key: value for key, value in os.environ.items() if key not in removed}
    if name == "default":
        return env, {}
    env.update(TUNED_SETTINGS)
    if name == "tuned":
        return env, dict(TUNED_SETTINGS)
    library = ctypes.util.find_library("jemalloc")
    if name != "jemalloc" or library is None:
        raise ValueError(f"unknown or unavailable environment {name!r}; choose default, tuned or jemalloc")
    env = {key: value for key, value in env.items() if not key.startswith("MALLOC_")}
    settings = {key: value for key, value in TUNED_SETTINGS.items() if not key.startswith("MALLOC_")}
    env["LD_PRELOAD"] = settings["LD_PRELOAD"] = library
    return env, settings


# ---- child processes ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class WorkerRun:
    """A finished child: its result (None when it wrote none), exit code, and why it failed ("" when it
    did not), followed by the tail of its output."""

    result: dict[str, Any] | None
    returncode: int
    reason: str


def proc_status_kib(field: str, pid: int | str = "self") -> int | None:
    """A KiB field of /proc/<pid>/status (VmRSS, VmHWM, ...); None where there is none (not Linux, gone)."""
    try:
        match = re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _kill_reason(pid: int, deadline: float, timeout: float, rss_limit: float | None) -> str:
    """Why a running child must be stopped now ("" = let it run)."""
    if time.monotonic() > deadline:
        return f"timeout (> {timeout:.0f} s)"
    kib = proc_status_kib("VmRSS", pid) if rss_limit is not None else None
    rss = 0 if kib is None else kib * 1024
    if rss_limit is not None and rss > rss_limit:
        return f"killed: RSS {rss / GIB:.1f} GiB > limit {rss_limit / GIB:.1f} GiB"
    return ""


def _watch(
    cmd: list[str], env: dict[str, str], timeout: float, rss_limit: float | None, echo: bool
) -> tuple[int, str]:
    """Run a child; kill it past the timeout or the RSS limit. (returncode, reason + tail of its output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    reason = ""
    with tempfile.TemporaryFile("w+") as log:

        def pump() -> None:
            for line in proc.stdout:
                log.write(line)
                if echo:
                    print(line, end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while proc.poll() is None:
            reason = _kill_reason(proc.pid, deadline, timeout, rss_limit)
            if reason:
                proc.kill()
                break
            time.sleep(0.2)
        proc.wait()
        reader.join(timeout=5)
        log.seek(0)
        tail = log.read()[-2000:]
    if not reason and proc.returncode:
        reason = f"exit code {proc.returncode}"
    return proc.returncode, reason + ("\n" + tail if reason else "")


def run_worker(
    script: str | Path,
    opts: dict[str, Any],
    env: dict[str, str],
    timeout: float = float("inf"),
    rss_limit: float | None = None,
    echo: bool = False,
) -> WorkerRun:
    """Run `script --worker OPTS OUT` (see serve) in `env`, under a timeout and an RSS limit; echo: print the
    child's output as it comes."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp) / "opts.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(opts))
        cmd = [sys.executable, str(Path(script).resolve()), "--worker", str(spec_file), str(out_file)]
        code, reason = _watch(cmd, env, timeout, rss_limit, echo)
        result = json.loads(out_file.read_text()) if out_file.exists() else None
    return WorkerRun(result, code, reason)


def serve(paths: list[Path], body: Callable[[dict[str, Any], Callable[[dict], None]], dict]) -> None:
    """The child side of run_worker: read the options, write body(opts, checkpoint)'s result;
    checkpoint(partial) stores a partial result the parent reads if the child dies before the end."""
    spec_file, out_file = paths
    opts = json.loads(spec_file.read_text())
    result = body(opts, lambda partial: out_file.write_text(json.dumps(partial)))
    out_file.write_text(json.dumps(result))


# ---- results -----------------------------------------------------------------------------------------------


def command_line(script: str | Path, argv: list[str] | None) -> str:
    """How the script was called, for the report: `python benchmarks/<script> <arguments>`."""
    args = argv if argv is not None else sys.argv[1:]
    return " ".join(["python", f"benchmarks/{Path(script).name}", *args])


def generated_by(command: str) -> str:
    """The opening words of every report: the command and the time it ran."""
    return f"Generated by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"


# How a report says that its bf16 numbers come from an emulated matmul (cpu_has_fast_bf16() is False).
NO_BF16_UNITS = "This CPU has no bf16 units (no avx512_bf16 / amx_bf16)"


def machine(env: dict[str, Any]) -> str:
    """A report's words for where it ran, from `environment()`: the GPU (if any), CPU, torch, threads,
    allocator/OpenMP vars."""
    gpu = f"{env['cuda_device']} (CUDA {env.get('cuda')}) on " if env.get("cuda_device") else ""
    return (
        f"{gpu}{env.get('cpu', 'cpu')}, torch {env.get('torch')}, {env.get('threads')} threads, environment "
        f"{env.get('env') or 'unset'}"
    )


def write_results(out: Path, files: dict[str, str | dict[str, Any]]) -> None:
    """Write each file under `out` (created): text as is, a dict as indented JSON."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=1, default=str)
        (out / name).write_text(text)


def publish(
    out: Path, stem: str, record: dict[str, Any], report: Callable[[dict[str, Any], str], str], command: str
) -> str:
    """The end of a single-table benchmark: record the environment, render `report(record, command)`, write
    <stem>.md and <stem>.json under `out` and print the table; returns it."""
    record.setdefault("environment", environment(record.get("device", "cpu")))
    text = report(record, command)
    write_results(out, {f"{stem}.md": text, f"{stem}.json": record})
    print(text)
    return text


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display on benchmark machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
