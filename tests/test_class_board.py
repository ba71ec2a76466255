"""The teacher's class board (tlcore.class_board and the Class page): students' state, the class's curve."""

from __future__ import annotations

import pytest

from tests.helpers import TINY_CONFIG, chart_rows, make_dataset_folder
from tests.test_class_mode import KEY, _join, _open, browser  # noqa: F401  (the class-mode fixture's helpers)
from tlcore.access import student
from tlcore.class_board import ANONYMOUS, class_results, results_csv, student_rows
from tlcore.classroom import Roster
from tlcore.data import scan
from tlcore.jobs import JobRegistry
from tlcore.runs import RunStore


@pytest.fixture
def class_with_runs(browser, runs_dir, tmp_path):  # noqa: F811
    """Ada (two finished runs: ImageNet-free at 18 and 0), Grace (none yet), and the teacher."""
    from tlcore.tf.training import train_and_record

    _join("Ada")
    browser.token = "browser-of-grace"
    _join("Grace")
    browser.token = "browser-of-teacher"
    _join("Teacher")
    roster = Roster()
    teacher = roster.who("browser-of-teacher")
    roster.make_teacher(teacher.owner)
    ada = roster.who("browser-of-ada")
    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    for freeze_at in (18, 0):
        train_and_record(TINY_CONFIG.replace(freeze_at=freeze_at), info, RunStore(actor=student(ada.owner)))
    return roster


def test_a_row_per_student_with_their_newest_run(class_with_runs):
    rows = student_rows(class_with_runs.people(), RunStore(), JobRegistry(max_active=1))
    assert [r["name"] for r in rows] == ["Ada", "Grace"]  # the teacher is not a row
    ada, grace = rows
    assert (ada["runs"], ada["freeze point"], ada["weights"], ada["state"]) == (2, 0, "random", "completed")
    assert 0 <= ada["val accuracy"] <= 1
    assert (grace["runs"], grace["state"], grace["photos"]) == (0, "no run yet", "—")


def test_the_class_results_hide_names_unless_shown_and_export_as_csv(class_with_runs):
    people = class_with_runs.people()
    hidden = class_results(people, RunStore(), show_names=False)
    assert [(r.name, r.freeze_at, r.pretrained) for r in hidden] == [(ANONYMOUS, 18, False), (ANONYMOUS, 0, False)]
    assert all(r.run_id == "" and r.chance == 0.5 for r in hidden)
    shown = class_results(people, RunStore(), show_names=True)
    csv = results_csv(shown).splitlines()
    assert csv[0] == "name,freeze_at,weights,val_accuracy,chance" and csv[1].startswith('"Ada",18,random,')


def test_the_class_page_is_the_teachers_and_shows_the_board(class_with_runs, browser):  # noqa: F811
    at = _open()
    at.switch_page("pages/class_board.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Class"]
    table = at.dataframe[0].value
    assert list(table["name"]) == ["Ada", "Grace"]
    points = [row for rows in chart_rows(at) for row in rows if "val accuracy" in row]
    assert [p["name"] for p in points] == [ANONYMOUS, ANONYMOUS]  # the projector shows no names by default
    assert [b.label for b in at.download_button] == ["Download the class's results (CSV)"]
    browser.token = "browser-of-grace"  # a student typing the page's address gets nothing of it
    student_view = _open()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        student_view.switch_page("pages/class_board.py")


def test_a_student_sees_the_class_results_without_names_and_no_feature_store(class_with_runs, browser):  # noqa: F811
    from tlcore.classroom import ClassSettings

    browser.token = "browser-of-grace"
    at = _open()
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    points = [row for rows in chart_rows(at) for row in rows if "val accuracy" in row]
    assert len(points) == 2 and {p["name"] for p in points} == {ANONYMOUS}
    assert not any(s.value == "Feature store" for s in at.subheader)
    ClassSettings().update(show_names=True)  # the teacher shows the names
    at.run()
    assert {row["name"] for rows in chart_rows(at) for row in rows if "val accuracy" in row} == {"Ada"}


def test_the_teacher_sets_limits_that_a_students_start_respects(class_with_runs, browser):  # noqa: F811
    from dashboard.state import WEIGHTS_SCRATCH, K
    from tlcore.jobs import JOBS

    at = _open()
    at.switch_page("pages/class_board.py").run()
    at.number_input(key="limit_size").set_value(64)
    at.button[[b.label for b in at.button].index("Save limits")].click().run()
    assert not at.exception
    from tlcore.classroom import ClassSettings

    assert ClassSettings().load()["limits"] == {"max_image_size": 64, "max_epochs": None, "max_minutes": None}
    browser.token = "browser-of-grace"
    grace = _open()  # the bundled sample
    grace.session_state[K.weights_choice] = WEIGHTS_SCRATCH
    grace.session_state[K.image_size] = 128
    grace.run()
    grace.switch_page("pages/train.py").run()
    grace.button(key="start_training").click().run()
    shown = [w.value for w in [*grace.warning, *grace.error]]
    assert any("largest image size is 64 px; these settings use 128 px" in w for w in shown), shown
    assert JOBS.running_for(Roster().who("browser-of-grace").owner) is None


def test_the_teacher_stops_a_students_job_from_the_board(class_with_runs, browser):  # noqa: F811
    from tlcore.jobs import JOBS

    ada = Roster().who("browser-of-ada")
    job = JOBS.start(ada.owner, "training", lambda job: job.stop_flag.wait(60))
    try:
        at = _open()
        at.switch_page("pages/class_board.py").run()
        assert any("**Ada** · training" in m.value for m in at.markdown)
        at.button(key=f"class_stop_{job.id}").click().run()
        job.thread.join(30)
        assert job.stop_flag.is_set() and not job.running
    finally:
        job.stop()


def test_the_teacher_spreads_the_experiment_and_a_student_applies_theirs(class_with_runs, browser):  # noqa: F811
    from dashboard.state import WEIGHTS_SCRATCH, K
    from tlcore.classroom import Assignment, ClassSettings, assignment_of, spread_assignments

    spread = spread_assignments(["a", "b", "c", "d", "e"], [18, 0], [True, False])
    assert list(spread.values()) == [
        Assignment(18, True),
        Assignment(0, True),
        Assignment(18, False),
        Assignment(0, False),
        Assignment(18, True),
    ]
    at = _open()
    at.switch_page("pages/class_board.py").run()
    at.multiselect(key="assign_points").set_value([10])
    at.multiselect(key="assign_weights").set_value(["random"])
    at.button(key="assign_spread").click().run()
    assert not at.exception
    grace = Roster().who("browser-of-grace")
    assert assignment_of(ClassSettings(), grace.owner) == Assignment(10, False)
    browser.token = "browser-of-grace"
    model = _open()
    model.switch_page("pages/model.py").run()
    assert any("Your class experiment: **freeze at 10, random weights**" in i.value for i in model.info)
    model.button(key="assignment_apply").click().run()
    assert (model.session_state[K.freeze_at], model.session_state[K.weights_choice]) == (10, WEIGHTS_SCRATCH)
    assert model.slider(key=K.freeze_at).value == 10
