"""Copies the scaffold (what `berth init --lang cpp` writes) into a work directory and runs its
own test_service.py there, which builds it against the SDK named by CMAKE_PREFIX_PATH.

    run_scaffold_test.py SCAFFOLD_DIR WORK_DIR
"""
import pathlib
import shutil
import subprocess
import sys

scaffold, work = map(pathlib.Path, sys.argv[1:3])
work.mkdir(parents=True, exist_ok=True)
for f in scaffold.iterdir():
    if f.is_file():
        shutil.copy2(f, work / f.name)
# The build directory is kept between runs to build incrementally, but the binary goes, so
# that test_service.py rebuilds it against the current SDK.
(work / "build" / "hello").unlink(missing_ok=True)
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(work / "test_service.py")], cwd=work))
