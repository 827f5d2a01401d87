"""Builds the hot path: a static C++ core (simdjson + decoder) and the Cython extensions.

simdjson.h/.cpp come from the installed pysimdjson package and picows.pxd from the installed
picows package; no third-party source lives in this repository.

Build switches (environment):
  FEEDHANDLER_BUILD=release|debug   release: -O3, no Cython checks (default)
                                    debug: -O0 -g, asserts, Cython bounds/wraparound checks,
                                    simdjson development checks
  FEEDHANDLER_SANITIZE=address,undefined   add sanitizers (use with debug; LD_PRELOAD libasan)
  FEEDHANDLER_ANNOTATE=1            write Cython HTML annotations next to the .pyx files
  FEEDHANDLER_MARCH=native          target CPU (-march=...; x86-64-vN adds -mpclmul). Default:
                                    x86-64-v2, the portable baseline. simdjson's On-Demand API
                                    fixes its SIMD kernel at compile time, so a plain x86-64
                                    build runs the scalar fallback: x86-64-v2 plus PCLMUL (every
                                    x86-64 server CPU since 2010) is the oldest target with a
                                    SIMD kernel (westmere). native / x86-64-v3 (haswell) /
                                    x86-64-v4 are opt-in
  FEEDHANDLER_PURE=1                no extensions, no compiler: a pure-Python package whose
                                    feedhandler.decode (and the schemas) work with numpy and
                                    orjson alone, for consumers; the handler needs the build
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from setuptools import Extension, setup

RDKAFKA_INCLUDE = os.environ.get("FEEDHANDLER_RDKAFKA_INCLUDE", ".tools/librdkafka/usr/include")


def compiled() -> dict[str, Any]:
    """setup() arguments of the compiled build (the hot path)."""
    import numpy
    import picows
    import simdjson
    from Cython.Build import cythonize

    MODE = os.environ.get("FEEDHANDLER_BUILD", "release")
    if MODE not in ("release", "debug"):
        raise SystemExit(f"FEEDHANDLER_BUILD must be release or debug, not {MODE!r}")
    SANITIZE = os.environ.get("FEEDHANDLER_SANITIZE", "")
    MARCH = os.environ.get("FEEDHANDLER_MARCH", "") or "x86-64-v2"
    # simdjson's westmere/haswell/icelake kernels need PCLMULQDQ, which no x86-64-vN level
    # includes (without it x86-64-v3 builds the scalar fallback); every CPU of those levels but
    # the first Nehalems has it
    PCLMUL = ["-mpclmul"] if MARCH.startswith("x86-64-v") else []

    SIMDJSON_DIR = Path(simdjson.__file__).parent
    PICOWS_DIR = Path(picows.__file__).parent
    CPP_DIR = Path("ext/cpp")

    common_flags = [
        "-std=c++17",
        f"-march={MARCH}",
        *PCLMUL,
        "-DSIMDJSON_EXCEPTIONS=0",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
    ]
    if MODE == "release":
        common_flags += ["-O3", "-DNDEBUG"]
    else:
        common_flags += ["-O0", "-g", "-UNDEBUG", "-DSIMDJSON_DEVELOPMENT_CHECKS=1"]
    link_flags: list[str] = []
    if SANITIZE:
        common_flags += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"]
        link_flags += [f"-fsanitize={SANITIZE}"]

    include_dirs = [str(CPP_DIR), str(SIMDJSON_DIR), numpy.get_include()]
    # librdkafka/rdkafka.h: Debian's librdkafka-dev, unpacked by `make setup` (or installed)
    if Path(RDKAFKA_INCLUDE).is_dir():
        include_dirs.append(RDKAFKA_INCLUDE)

    # Compiled once and linked into every extension: simdjson.cpp alone takes most of the build.
    core_library = (
        "feedhandler_core",
        {
            "sources": [str(p) for p in sorted(CPP_DIR.glob("*.cpp"))],
            # a changed header (decoder_gen.h, written by the kinds' codegen) rebuilds it too
            "obj_deps": {"": [str(p) for p in sorted(CPP_DIR.glob("*.h"))]},
            "include_dirs": include_dirs,
            "cflags": common_flags,
        },
    )

    def extension(name: str) -> Extension:
        return Extension(
            f"feedhandler._ext.{name}",
            [f"ext/feedhandler/_ext/{name}.pyx"],
            language="c++",
            include_dirs=include_dirs,
            extra_compile_args=common_flags,
            # (the producer's librdkafka symbols: from confluent-kafka's copy, made global at
            # import by feedhandler/_ext/__init__.py)
            extra_link_args=link_flags,
            libraries=["feedhandler_core"],
            # The core is a static library: relink whenever its sources change.
            depends=[str(p) for p in sorted(CPP_DIR.iterdir())],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )

    checks = MODE == "debug"
    return dict(
        libraries=[core_library],
        ext_modules=cythonize(
            [extension(p.stem) for p in sorted(Path("ext/feedhandler/_ext").glob("*.pyx"))],
            include_path=["ext", str(PICOWS_DIR.parent)],
            annotate=os.environ.get("FEEDHANDLER_ANNOTATE") == "1",
            compiler_directives={
                "language_level": 3,
                "boundscheck": checks,
                "wraparound": checks,
                "initializedcheck": checks,
                "cdivision": not checks,
                "embedsignature": True,
            },
        ),
    )


# FEEDHANDLER_PURE=1: no extensions, no compiler (see the docstring)
setup(**({} if os.environ.get("FEEDHANDLER_PURE") == "1" else compiled()))
