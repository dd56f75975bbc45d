"""captcha audit: curve bookkeeping, interval and interpolation arithmetic, budget stop, Ctrl-C, bad input."""

import json

import pytest

from captcha.audit import AuditConfig, crossing, run_audit, verdict, wilson
from captcha.cli import main
from captcha.data import load_folder
from captcha.model import CaptchaModel, Reading
from recognisers.errors import UserError

CHARSET = "ABCDEFGH23"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit") / "data"
    assert (
        main(["generate", str(root), "--count", "150", "--length", "4", "--charset", CHARSET, "--seed", "3"])
        == 0
    )
    return root


class FakeSolver(CaptchaModel):
    """Reads the first ``accuracy`` share of what it is given right, the rest wrong."""

    reader, case, charset = "segment", "keep", CHARSET

    def __init__(self, accuracy, seen):
        self.accuracy, self.seen = accuracy, seen

    def read_each(self, paths):
        self.seen.append(list(paths))
        right = round(self.accuracy * len(paths))
        return [
            Reading(p.name.split("_")[0] if i < right else "XXXX", 0.5, [0.5] * 4)
            for i, p in enumerate(paths)
        ]


class FakeTrainer:
    """Records every training subset; advances a fake clock by one second per training image."""

    def __init__(self, accuracy=0.5, interrupt_at=None, fail_at=None):
        self.now, self.calls, self.read = 0.0, [], []
        self.accuracy, self.interrupt_at, self.fail_at = accuracy, interrupt_at, fail_at

    def clock(self):
        return self.now

    def __call__(self, subset, seed, cap, config):
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append((len(subset), seed, {s.path for s in subset}, cap))
        self.now += len(subset)
        if len(self.calls) - 1 == self.fail_at:
            raise UserError("too few images could be segmented to train on")
        return FakeSolver(self.accuracy, self.read)


def test_wilson_against_hand_worked_intervals():
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(1, 100) == pytest.approx((0.0018, 0.0545), abs=1e-4)


def test_crossing_interpolates_on_log_size():
    sizes, accs = [50, 100, 200], [0.0, 0.02, 0.6]
    assert crossing(sizes, accs, 0.01) == pytest.approx(50 * 2**0.5)  # half way in log(n)
    assert crossing(sizes, accs, 0.5) == pytest.approx(100 * 2 ** (0.48 / 0.58))
    assert crossing(sizes, accs, 0.9) is None
    assert crossing(sizes, [0.3, 0.6, 0.9], 0.01) == 50  # reached at the first point: at most that
    points = [{"size": n, "sequence_accuracy": a} for n, a in zip(sizes, accs)]
    v = verdict(points, AuditConfig())
    assert (v["broken_at"], v["half_at"], v["reliable_at"]) == (71, 177, None)  # 100 * 2 ** 0.8276 = 177.5
    assert "not reached with 200 samples" in v["sentence"]


def test_curve_bookkeeping_sizes_seeds_disjoint_files(folder, tmp_path):
    fake = FakeTrainer(accuracy=0.5)
    config = AuditConfig(sizes=(20, 40, 80), small_size=40, seeds_small=3, time_budget=1e6)
    samples = load_folder(folder)
    report = run_audit(samples, tmp_path / "out", config, trainer=fake, clock=fake.clock)
    assert [(p["size"], p["seeds"]) for p in report["points"]] == [(20, 3), (40, 3), (80, 1)]
    assert [(n, seed) for n, seed, _, _ in fake.calls] == [
        (20, 0),
        (20, 1),
        (20, 2),
        (40, 0),
        (40, 1),
        (40, 2),
        (80, 0),
    ]
    test = set(fake.read[0])
    assert len(test) == report["test_count"] == 30 and all(set(r) == test for r in fake.read)
    for _, _, files, _ in fake.calls:
        assert not files & test  # never trained on a held-out file
    assert fake.calls[0][2] != fake.calls[1][2]  # seeds draw different subsets
    again = FakeTrainer()
    run_audit(samples, tmp_path / "again", config, trainer=again, clock=again.clock)
    assert [c[2] for c in again.calls] == [c[2] for c in fake.calls]  # same seed, same files
    point = report["points"][0]
    assert point["sequence_accuracy"] == 0.5 and point["read"] == 90
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(wilson(45, 90))
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["verdict"]["half_at"] == 20 and saved["verdict"]["reliable_at"] is None
    html = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html  # self-contained
    assert (tmp_path / "out" / "curve.png").stat().st_size > 1000


def test_time_budget_stops_before_a_point_that_would_exceed_it(folder, tmp_path):
    fake = FakeTrainer()
    config = AuditConfig(sizes=(10, 20, 40, 80), seeds_small=1, time_budget=100, min_fit_seconds=1)
    report = run_audit(load_folder(folder), tmp_path / "out", config, trainer=fake, clock=fake.clock)
    # 10 + 20 s measured; size 40 is estimated at 40 s (fits in 70 s left), 80 at 80 s (30 s left)
    assert [p["size"] for p in report["points"]] == [10, 20, 40]
    assert "size 80" in report["stopped"] and "time budget" in report["stopped"]
    assert all(cap <= 100 for *_, cap in fake.calls)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(saved["points"]) == 3 and saved["stopped"] == report["stopped"]


def test_a_draw_no_reader_trains_on_counts_as_read_nothing(folder, tmp_path):
    fake = FakeTrainer(accuracy=0.5, fail_at=0)
    config = AuditConfig(sizes=(10, 20), seeds_small=2, time_budget=1e6)
    report = run_audit(load_folder(folder), tmp_path / "out", config, trainer=fake, clock=fake.clock)
    first = report["points"][0]
    assert (first["correct"], first["read"]) == (15, 60) and first["readers"] == ["none", "segment"]
    assert first["failed"] == ["too few images could be segmented to train on"]
    assert report["points"][1]["sequence_accuracy"] == 0.5 and report["points"][1]["failed"] == []


def test_interrupted_audit_leaves_a_readable_partial_report(folder, tmp_path):
    fake = FakeTrainer(interrupt_at=1)
    config = AuditConfig(sizes=(10, 20, 40), seeds_small=1, time_budget=1e6)
    with pytest.raises(KeyboardInterrupt):
        run_audit(load_folder(folder), tmp_path / "out", config, trainer=fake, clock=fake.clock)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [p["size"] for p in saved["points"]] == [10]
    assert saved["stopped"].startswith("interrupted") and saved["verdict"]["half_at"] == 10
    assert (tmp_path / "out" / "report.html").is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".fits")]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--sizes", "200"], "too few"),  # 150 images: 120 to train on
        (["--sizes", "20,10"], "increasing"),
        (["--sizes", "20,x"], "whole numbers"),
        (["--time-budget", "5s"], "too small for one point"),
        (["--time-budget", "soon"], "duration"),
        (["--time-budget", "nan"], "duration"),
        (["--time-budget", "1e999m"], "duration"),
    ],
)
def test_bad_input_is_one_error_line(folder, tmp_path, capsys, options, message):
    out = tmp_path / "out"
    code = main(["audit", str(folder), "--out", str(out), *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("captcha: error:") and message in err[0]
    assert not out.exists()  # refused before the output folder is made


def test_refuses_a_users_folder_and_replaces_an_audit_only_with_force(folder, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["audit", str(folder), "--out", str(mine), "--sizes", "10"]) == 1
    assert "not a model directory" in capsys.readouterr().err and (mine / "notes.txt").exists()
    config = AuditConfig(sizes=(10,), seeds_small=1, time_budget=1e6)
    fake = FakeTrainer()
    run_audit(load_folder(folder), tmp_path / "audit", config, trainer=fake, clock=fake.clock)
    with pytest.raises(UserError, match="--force"):
        run_audit(load_folder(folder), tmp_path / "audit", config, trainer=fake, clock=fake.clock)
    report = run_audit(
        load_folder(folder), tmp_path / "audit", config, force=True, trainer=fake, clock=fake.clock
    )
    assert len(report["points"]) == 1


def test_forced_audit_keeps_the_previous_one_until_it_measures_a_point(folder, tmp_path):
    config = AuditConfig(sizes=(10, 20), seeds_small=1, time_budget=1e6)
    fake = FakeTrainer()
    run_audit(load_folder(folder), tmp_path / "audit", config, trainer=fake, clock=fake.clock)
    before = (tmp_path / "audit" / "report.json").read_text()
    early = FakeTrainer(interrupt_at=0)  # interrupted before its first point
    with pytest.raises(KeyboardInterrupt):
        run_audit(
            load_folder(folder), tmp_path / "audit", config, force=True, trainer=early, clock=early.clock
        )
    assert (tmp_path / "audit" / "report.json").read_text() == before
    late = FakeTrainer(interrupt_at=1)  # one point measured: the new audit replaces the old
    with pytest.raises(KeyboardInterrupt):
        run_audit(load_folder(folder), tmp_path / "audit", config, force=True, trainer=late, clock=late.clock)
    saved = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert [p["size"] for p in saved["points"]] == [10] and saved["stopped"].startswith("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]  # no backup left beside it


def test_real_tiny_audit_learns(folder, tmp_path):
    """The real trainer (segmenting reader, few epochs): more samples read more characters."""
    config = AuditConfig(sizes=(15, 110), seeds_small=1, reader="segment", epochs=8, time_budget=600)
    report = run_audit(load_folder(folder), tmp_path / "out", config)
    first, last = report["points"]
    assert last["char_accuracy"] > 0.5 and last["char_accuracy"] > first["char_accuracy"] + 0.2
    assert report["details"]["clean_cut_share"] > 0.5 and report["points"][1]["readers"] == ["segment"]
    assert (tmp_path / "out" / "hardest.png").is_file()
