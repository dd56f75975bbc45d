"""The shared plumbing: atomic model directories, meta checks, atomic JSON."""

import json
import os
import stat
import subprocess
import sys

import pytest

from recognisers.errors import UserError, run_cli
from recognisers.modeldir import read_meta, staged_model_dir, write_json, write_meta


def test_staged_dir_is_renamed_into_place(tmp_path):
    out = tmp_path / "model"
    with staged_model_dir(out, kind="demo") as tmp:
        write_meta(tmp, "demo", 1, {"x": 1})
        assert not out.exists()
    assert read_meta(out, "demo", 1)["x"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_crash_leaves_existing_model_untouched(tmp_path):
    out = tmp_path / "model"
    with staged_model_dir(out, kind="demo") as tmp:
        write_meta(tmp, "demo", 1, {"x": 1})
    with pytest.raises(RuntimeError):
        with staged_model_dir(out, kind="demo", force=True) as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            raise RuntimeError("crash during training")
    assert read_meta(out, "demo", 1)["x"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_existing_model_needs_force(tmp_path):
    out = tmp_path / "model"
    with staged_model_dir(out, kind="demo") as tmp:
        write_meta(tmp, "demo", 1, {"x": 1})
    with pytest.raises(UserError, match="--force"):
        with staged_model_dir(out, kind="demo"):
            pass
    with staged_model_dir(out, kind="demo", force=True) as tmp:
        write_meta(tmp, "demo", 1, {"x": 2})
    assert read_meta(out, "demo", 1)["x"] == 2


def test_non_model_folder_is_never_replaced(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not a model directory"):
        with staged_model_dir(tmp_path / "photos", kind="demo", force=True):
            pass
    assert (tmp_path / "photos" / "cat.jpg").exists()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "not found"),
        (lambda d: d.mkdir(), "no meta.json"),
        (lambda d: (d.mkdir(), (d / "meta.json").write_text("{broken")), "unreadable"),
        (
            lambda d: (d.mkdir(), (d / "meta.json").write_text('{"kind": "vqa", "format_version": 1}')),
            "vqa model",
        ),
        (
            lambda d: (d.mkdir(), (d / "meta.json").write_text('{"kind": "demo", "format_version": 0}')),
            "format 0",
        ),
    ],
)
def test_read_meta_errors(tmp_path, setup, message):
    setup(tmp_path / "m")
    with pytest.raises(UserError, match=message):
        read_meta(tmp_path / "m", "demo", 1)


def test_write_json_is_whole(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_run_cli_prints_one_line(capsys):
    def main(argv):
        raise UserError("no such file: x.png")

    assert run_cli("captcha", main, []) == 1
    err = capsys.readouterr().err
    assert err == "captcha: error: no such file: x.png\n"


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_model_dir(tmp_path / "model", kind="demo") as tmp:
            write_meta(tmp, "demo", 1, {})
        write_json(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / "meta.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_recording_versions_first_keeps_tensorflow_quiet():
    """`captcha audit` writes meta.json before any model exists: that must not print TF's lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CUDA"))}
    code = "from recognisers.modeldir import versions; print(versions()['tensorflow'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip()
    assert proc.stderr == ""


_FAULTS_PER_STEP = """
import resource, sys
import numpy as np
from recognisers.backend import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def step():  # tensors of 2, 6, 8 and 4 MiB allocated, touched, freed: like a training step
    tensors = [np.ones(n) for n in (1 << 18, 3 << 18, 1 << 20, 1 << 19)]
    del tensors
step()  # the first one may fault in
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_tensor_memory_is_reused_without_page_faults():
    """What makes training steps cheaper on machines where a page fault is dear: memory a
    step frees is there for the next, not handed back to the system and faulted in again
    page by page (glibc's defaults: about 1,500 faults a step here, 0 kept)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    runs = {}
    for mode in ("default", "keep"):
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        applied, faults = out.stdout.split()
        runs[mode] = (applied, float(faults))
    assert runs["keep"][0] == "True"
    assert runs["default"][1] > 1000 and runs["keep"][1] < 50, runs
