"""The Windows programs are native: they import only DLLs that every Windows has."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.any_protocol

# Windows' own DLLs; anything else (libwinpthread-1.dll, libgcc_s_seh-1.dll, cygwin1.dll) must not appear.
SYSTEM_DLLS = {"kernel32.dll", "msvcrt.dll", "ws2_32.dll", "user32.dll", "advapi32.dll", "ucrtbase.dll"}


@pytest.mark.builds("wine")
@pytest.mark.parametrize("program", ["server.exe", "client.exe"])
def test_exe_imports_only_system_dlls(target, program):
    objdump = shutil.which("x86_64-w64-mingw32-objdump")
    assert objdump, "x86_64-w64-mingw32-objdump is missing: run 'make deps'"
    # The program under test: the stage's own, or a student's copy (IMPL=), whose programs are what it built.
    headers = subprocess.run([objdump, "-p", str(target.stage.programs / program)], capture_output=True, text=True,
                             timeout=60)
    dlls = {line.split(":", 1)[1].strip().lower() for line in headers.stdout.splitlines() if "DLL Name:" in line}
    assert dlls, f"no imports found in {program}: {headers.stderr}"
    foreign = {dll for dll in dlls if dll not in SYSTEM_DLLS and not dll.startswith("api-ms-win-")}
    assert not foreign, f"{target.stage.name}/{program} imports non-system DLLs: {sorted(foreign)}"
