"""The files that take a compiled folder into a firmware project: a Makefile fragment, a CMake
fragment and a linker-script snippet with the target's memory regions.

The linker script states the regions with their real sizes, so a model that does not fit is
a link error that names the region and the bytes over ("region `FLASH' overflowed by N bytes").
"""

from __future__ import annotations

from emberflow.targets import Target
from emberflow.toolchain.mcu.artifact import RUNTIME_SUBDIR, Artifact, apps_dir
from emberflow.toolchain.mcu.board import (
    Board,
    flash_region,
    ram_region,
    region_origins,
    target_core,
)


def memory_block(flash_origin: int, flash_bytes: int, ram_origin: int, ram_bytes: int) -> str:
    return (
        "MEMORY\n{\n"
        f"  FLASH (rx)  : ORIGIN = {flash_origin:#010x}, LENGTH = {flash_bytes}\n"
        f"  RAM   (rwx) : ORIGIN = {ram_origin:#010x}, LENGTH = {ram_bytes}\n"
        "}\n"
    )


def target_memory(target: Target, on: Board | None = None) -> str:
    """MEMORY for the target; for a QEMU board, at the board's addresses and never larger than the target."""
    flash, ram = flash_region(target), ram_region(target)
    if on is not None:
        return memory_block(
            on.flash_origin,
            min(flash.bytes, on.flash_bytes),
            on.ram_origin,
            min(ram.bytes, on.ram_bytes),
        )
    origins = region_origins(target)
    return memory_block(
        origins.get(flash.name, 0x08000000),
        flash.bytes,
        origins.get(ram.name, 0x20000000),
        ram.bytes,
    )


def linker_script(memory: str) -> str:
    return memory + "\n" + (apps_dir() / "sections.ld").read_text()


def write_build_files(art: Artifact, target: Target) -> None:
    n = art.name
    core = target_core(target)
    cflags = " ".join(core.cflags)
    (
        art.dir / f"{n}.mk"
    ).write_text(f"""# emberflow model {n} for {target.name}: include this from your firmware's Makefile.
# It adds the model and the shared runtime (compile ef_kernels.c once per firmware, however many models).
{n.upper()}_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
EF_RUNTIME_DIR ?= $({n.upper()}_DIR){RUNTIME_SUBDIR}
EF_MODEL_SRCS += $({n.upper()}_DIR){n}.c $({n.upper()}_DIR){n}_data.c
EF_RUNTIME_SRCS := $(EF_RUNTIME_DIR)/ef_kernels.c
EF_CFLAGS += -I$({n.upper()}_DIR) -I$(EF_RUNTIME_DIR) -std=c99 -O2 -ffunction-sections -fdata-sections
EF_CPU_FLAGS ?= {cflags}
EF_LDFLAGS += -Wl,--gc-sections -T $({n.upper()}_DIR){n}_memory.ld
""")
    (
        art.dir / f"{n}.cmake"
    ).write_text(f"""# emberflow model {n} for {target.name}: include() this from CMakeLists.txt, then
#   target_link_libraries(your_firmware PRIVATE {n})
set({n.upper()}_DIR ${{CMAKE_CURRENT_LIST_DIR}})
if(NOT TARGET ef_runtime)
  add_library(ef_runtime STATIC ${{{n.upper()}_DIR}}/{RUNTIME_SUBDIR}/ef_kernels.c)
  target_include_directories(ef_runtime PUBLIC ${{{n.upper()}_DIR}}/{RUNTIME_SUBDIR})
  target_compile_options(ef_runtime PRIVATE -O2)
endif()
add_library({n} STATIC ${{{n.upper()}_DIR}}/{n}.c ${{{n.upper()}_DIR}}/{n}_data.c)
target_include_directories({n} PUBLIC ${{{n.upper()}_DIR}})
target_link_libraries({n} PUBLIC ef_runtime)
""")
    (art.dir / f"{n}_memory.ld").write_text(
        f"/* emberflow: memory of {target.name} ({target.description}) from its device profile,\n"
        " * and where the model's sections go. A complete script for a bare-metal build; in an existing\n"
        " * project, copy the section rules (.nn_weights to flash, .nn_data_act/.nn_state to RAM). */\n"
        + linker_script(target_memory(target))
    )
