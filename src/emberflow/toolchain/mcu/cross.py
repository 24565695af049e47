"""Cross-build the generated C with arm-none-eabi-gcc and measure it.

A build links one of the two apps (SystemPerformance or Validation) with one or more compiled
models. Sizes come from the linker map, grouped by what placed them: the model's weights and
parameters (.nn_weights), its run function, the shared runtime and kernels, the C library
helpers they call, the app. Kernel stack depth comes from -fstack-usage.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from emberflow.toolchain.mcu.artifact import Artifact, BuildError, SizesRecord, apps_dir
from emberflow.toolchain.mcu.board import Board, Core
from emberflow.toolchain.mcu.buildfiles import linker_script

APPS = {"perf": "app_perf.c", "validation": "app_validation.c"}
INSTALL_HINT = (
    "the Cortex-M cross toolchain is missing: `make mcu-tools` installs gcc-arm-none-eabi, "
    "libnewlib-arm-none-eabi and qemu-system-arm (Debian packages)"
)


def cross_gcc() -> str:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise BuildError(INSTALL_HINT)
    return gcc


def have_cross_toolchain() -> bool:
    return shutil.which("arm-none-eabi-gcc") is not None and Path("/usr/lib/arm-none-eabi/newlib").exists()


@dataclass
class Sizes:
    """Bytes by what they hold; flash = text + rodata + data initialisers, RAM = data + bss + stack."""

    weights: int = 0  # .nn_weights: weights, biases, multipliers, layer parameter structs
    model_code: int = 0  # the generated run function and API
    runtime_code: int = 0  # ef_kernels.o: the shared kernels
    libc_code: int = 0  # memcpy/memset and friends the kernels call
    app_code: int = 0  # the SystemPerformance/Validation app and startup
    arena: int = 0
    state: int = 0
    model_data_bss: int = 0  # .data/.bss of the model and runtime objects (0: all const)
    data_bss: int = 0  # .data/.bss of everything else (the app, libc)
    stack_reserved: int = 0
    kernel_stack: int = 0  # deepest kernel frame from -fstack-usage
    kernel_stack_function: str = ""
    by_object: dict[str, int] = field(default_factory=dict)

    @property
    def model_flash(self) -> int:
        """What the model costs in flash: weights + its code + the runtime (+ the libc it needs)."""
        return self.weights + self.model_code + self.runtime_code + self.libc_code

    @property
    def runtime_and_kernels(self) -> int:
        return self.runtime_code + self.libc_code

    @property
    def model_ram(self) -> int:
        """What the model costs in RAM: arena, state, its own data/bss and the deepest
        kernel frame (on the caller's stack)."""
        return self.arena + self.state + self.model_data_bss + self.kernel_stack

    @property
    def ram(self) -> int:
        """RAM of the whole build: the model, the app's data/bss and the reserved stack."""
        return self.arena + self.state + self.model_data_bss + self.data_bss + self.stack_reserved

    def to_record(self) -> SizesRecord:
        return SizesRecord(
            weights=self.weights,
            model_code=self.model_code,
            runtime_code=self.runtime_code,
            libc_code=self.libc_code,
            app_code=self.app_code,
            arena=self.arena,
            state=self.state,
            model_data_bss=self.model_data_bss,
            data_bss=self.data_bss,
            stack_reserved=self.stack_reserved,
            kernel_stack=self.kernel_stack,
            kernel_stack_function=self.kernel_stack_function,
            by_object=dict(self.by_object),
            model_flash=self.model_flash,
            runtime_and_kernels=self.runtime_and_kernels,
            model_ram=self.model_ram,
            ram=self.ram,
        )


class DoesNotFit(BuildError):
    """The link failed because memory regions overflowed (region -> bytes over)."""

    def __init__(self, over: dict[str, int]) -> None:
        self.over = over
        super().__init__("does not fit: " + "; ".join(f"region {r} overflowed by {n} bytes" for r, n in over.items()))


@dataclass
class CrossBuild:
    elf: Path
    map_file: Path
    sizes: Sizes
    core: str


_LINK_ERROR = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def build_app(
    arts: list[Artifact],
    core: Core,
    memory: str,
    app: str,
    out: Path,
    *,
    kernels: str = "dsp",
    defines: list[str] | None = None,
    stack: int = 4096,
) -> CrossBuild:
    """Link `app` with the models for `core`; a model that does not fit is a BuildError naming the region."""
    gcc = cross_gcc()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    runtime = arts[0].runtime
    (out / "link.ld").write_text(linker_script(memory))
    cflags = [
        *core.cflags,
        "-O2",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-ffunction-sections",
        "-fdata-sections",
        "-fstack-usage",
        "-fwrapv",
        f"-I{runtime}",
        f"-I{apps_dir()}",
        *(f"-D{d}" for d in defines or []),
    ]
    if kernels == "portable":
        cflags.append("-DEF_KERNELS_PORTABLE")
    sources = [
        runtime / "ef_kernels.c",
        apps_dir() / "ef_board.c",
        apps_dir() / APPS[app],
    ]
    for art in arts:
        sources += art.c_sources()
    objects = []
    for src in map(Path.resolve, sources):
        obj = out / (src.stem + ".o")
        include = [f"-I{src.parent}"]
        res = subprocess.run(
            [gcc, *cflags, *include, "-c", str(src), "-o", str(obj)],
            capture_output=True,
            text=True,
            check=False,
            cwd=out,
        )
        if res.returncode != 0:
            raise BuildError(f"arm-none-eabi-gcc failed on {src.name}:\n{res.stderr.strip()[-2000:]}")
        objects.append(obj)
    elf, map_file = out / f"{app}.elf", out / f"{app}.map"
    link = [
        gcc,
        *core.cflags,
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-T",
        str(out / "link.ld"),
        f"-Wl,--defsym=__stack_size={stack}",
        "-Wl,--gc-sections",
        f"-Wl,-Map={map_file}",
        *map(str, objects),
        "-o",
        str(elf),
    ]
    res = subprocess.run(link, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        over = _LINK_ERROR.findall(res.stderr)
        if over:
            raise DoesNotFit({region: int(n) for region, n in over})
        raise BuildError(f"link failed:\n{res.stderr.strip()[-2000:]}")
    sizes = measure(map_file, [a.name for a in arts], out)
    sizes.stack_reserved = stack
    return CrossBuild(elf, map_file, sizes, core.name)


_MAP_LINE = re.compile(
    r"^\s*(\.[\w.$]+|nn_models|COMMON)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.o\)?|\S+\.a\(\S+\))\s*$"
)


def measure(map_file: Path, model_names: list[str], build_dir: Path) -> Sizes:
    """Attribute every input section the linker kept to what it holds."""
    sizes = Sizes()
    section = ""
    pending = ""
    for raw in map_file.read_text().splitlines():
        if raw.startswith("Discarded input sections"):
            section = "discarded"
        if raw.startswith("Linker script and memory map"):
            section = ""
        if section == "discarded":
            continue
        line = pending + raw if pending else raw
        pending = ""
        stripped = line.strip()
        if re.fullmatch(r"(\.[\w.$]+|nn_models|COMMON)", stripped):
            # long section names put the address on the next line
            pending = stripped + " "
            continue
        m = _MAP_LINE.match(line)
        if not m:
            continue
        name, size, origin = (m.group(1) or ""), int(m.group(3), 16), m.group(4)
        if size == 0 or int(m.group(2), 16) == 0:
            continue
        obj = Path(origin.split("(")[-1].rstrip(")")).name
        sizes.by_object[obj] = sizes.by_object.get(obj, 0) + size
        is_model = any(obj in (f"{n}.o", f"{n}_data.o") for n in model_names)
        if name.startswith(".nn_weights"):
            sizes.weights += size
        elif name.startswith(".nn_data_act") or (name == "COMMON" and is_model):
            sizes.arena += size
        elif name.startswith(".nn_state"):
            sizes.state += size
        elif name.startswith((".data", ".bss", "COMMON")):
            if is_model or obj == "ef_kernels.o":
                sizes.model_data_bss += size
            else:
                sizes.data_bss += size
        elif name.startswith((".text", ".rodata", "nn_models")):
            if is_model:
                sizes.model_code += size
            elif obj == "ef_kernels.o":
                sizes.runtime_code += size
            elif ".a(" in origin or origin.endswith(".a)"):
                sizes.libc_code += size
            else:
                sizes.app_code += size
    su = build_dir / "ef_kernels.su"
    if su.exists():
        for row in su.read_text().splitlines():
            parts = row.split("\t")
            if len(parts) < 2 or not parts[1].strip().isdigit():
                continue
            if int(parts[1]) > sizes.kernel_stack:
                sizes.kernel_stack = int(parts[1])
                sizes.kernel_stack_function = parts[0].split(":")[-1]
    return sizes


def board_memory(board: Board, flash_limit: int, ram_limit: int) -> str:
    from emberflow.toolchain.mcu.buildfiles import memory_block

    return memory_block(
        board.flash_origin,
        min(board.flash_bytes, flash_limit),
        board.ram_origin,
        min(board.ram_bytes, ram_limit),
    )
