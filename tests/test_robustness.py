"""Issue 9: nothing a user made is lost, no tracebacks, bounded work on hostile input."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recognisers.errors import UserError, run_cli
from recognisers.modeldir import lock_dir, read_meta, staged_model_dir, write_meta


def make_model(path: Path, kind: str = "demo", value: int = 1) -> None:
    with staged_model_dir(path, kind=kind, force=True) as tmp:
        write_meta(tmp, kind, 1, {"x": value})


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- D1: the final rename replaces only what was checked -----------------------------------------
def test_folder_made_at_out_during_training_is_kept(tmp_path):
    out = tmp_path / "m"
    with pytest.raises(UserError, match="changed by something else.*new model is in"):
        with staged_model_dir(out, kind="demo") as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            out.mkdir()
            (out / "keep.txt").write_text("keep")
    assert (out / "keep.txt").read_text() == "keep"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("m.new-")]
    assert len(kept) == 1 and read_meta(kept[0], "demo", 1)["x"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_trainings_into_one_new_out_do_not_overwrite_each_other(tmp_path):
    out = tmp_path / "m"
    with pytest.raises(UserError, match="new model is in"):
        with staged_model_dir(out, kind="demo") as first:
            write_meta(first, "demo", 1, {"x": 1})
            make_model(out, value=2)  # the second run finishes first
    assert read_meta(out, "demo", 1)["x"] == 2


def test_force_does_not_replace_a_folder_swapped_in_during_training(tmp_path):
    out = tmp_path / "m"
    make_model(out)
    with pytest.raises(UserError, match="changed by something else"):
        with staged_model_dir(out, kind="demo", force=True) as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
            out.mkdir()
            (out / "keep.txt").write_text("keep")
    assert names(out) == ["keep.txt"]


def test_force_does_not_replace_a_model_emptied_during_training(tmp_path):
    out = tmp_path / "m"
    make_model(out)
    with pytest.raises(UserError, match="changed by something else"):
        with staged_model_dir(out, kind="demo", force=True) as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            (out / "meta.json").write_text("{}")
            (out / "keep.txt").write_text("keep")
    assert "keep.txt" in names(out)


def test_an_empty_folder_at_out_is_used(tmp_path):
    (tmp_path / "m").mkdir()
    make_model(tmp_path / "m")
    assert read_meta(tmp_path / "m", "demo", 1)["x"] == 1


# -- D2: only a valid model of the same kind is replaceable --------------------------------------
@pytest.mark.parametrize("meta", ["{}", '{"kind": "demo"}', '{"kind": "demo", "format_version": 1}',
                                  "[]", "not json"])
def test_force_never_replaces_a_folder_that_merely_holds_a_meta_json(tmp_path, meta):
    out = tmp_path / "x"
    out.mkdir()
    (out / "meta.json").write_text(meta)
    (out / "keep.txt").write_text("keep")
    with pytest.raises(UserError, match="not a model directory"):
        make_model(out)
    assert names(out) == ["keep.txt", "meta.json"]


def test_force_from_one_tool_refuses_the_other_tools_model(tmp_path):
    make_model(tmp_path / "m", kind="vqa")
    with pytest.raises(UserError, match="holds a vqa model, not a captcha model"):
        make_model(tmp_path / "m", kind="captcha")
    assert read_meta(tmp_path / "m", "vqa", 1)["x"] == 1


# -- D3: unique staging names; stale ones cleaned; SIGTERM like Ctrl-C ---------------------------
def test_force_keeps_a_user_folder_named_like_the_old_backup(tmp_path):
    make_model(tmp_path / "m")
    (tmp_path / ".m.old").mkdir()
    (tmp_path / ".m.old" / "keep.txt").write_text("keep")
    make_model(tmp_path / "m", value=2)
    assert (tmp_path / ".m.old" / "keep.txt").exists()
    assert names(tmp_path) == [".m.old", "m"]


def test_stale_staging_folders_are_cleaned_and_reported(tmp_path):
    (tmp_path / ".m.abcd1234.tmp").mkdir()
    (tmp_path / ".m.abcd1234.tmp" / "half.keras").write_text("x")
    notes = []
    with staged_model_dir(tmp_path / "m", kind="demo", log=notes.append) as tmp:
        write_meta(tmp, "demo", 1, {})
    assert names(tmp_path) == ["m"] and "interrupted run" in notes[0]


def test_a_backup_left_by_a_killed_replace_is_restored(tmp_path):
    make_model(tmp_path / "m")
    (tmp_path / "m").rename(tmp_path / ".m.zz9_abcd.old")  # killed between the two renames
    notes = []
    with pytest.raises(UserError, match="--force"):
        with staged_model_dir(tmp_path / "m", kind="demo", log=notes.append):
            pass
    assert read_meta(tmp_path / "m", "demo", 1)["x"] == 1
    assert names(tmp_path) == ["m"] and "restored" in notes[0]


def test_a_staging_folder_in_use_is_left_alone(tmp_path):
    busy = tmp_path / ".m.inuse123.tmp"
    busy.mkdir()
    fd = lock_dir(busy)
    try:
        make_model(tmp_path / "m")
        assert busy.exists()
    finally:
        os.close(fd)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, capsys):
    def main(argv):
        with staged_model_dir(tmp_path / "m", kind="demo"):
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt")

    assert run_cli("captcha", main, []) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "captcha: terminated\n"
    assert names(tmp_path) == []
