"""Jobs on a Ray cluster (tlcore.cluster, tlcore.ray_dispatcher): a local Ray of two workers, started here.

The Ray runs in a network namespace of its own with only loopback (so nothing it starts listens
beyond this machine), is shut down at the end, and the cluster-gone test ends it mid-run itself.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from bench._common import wait_for
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, make_dataset_folder, open_on_tiny_folder, train_status
from tlcore.access import ADMIN
from tlcore.backend import ClusterError, StorageNotShared
from tlcore.cluster import LOCAL, RayBackend, backend_from_env
from tlcore.data import scan
from tlcore.jobs import FAILED, JobRegistry, start_sweep, start_training, start_transfer_curve, train_job
from tlcore.progress import WorkerStarted
from tlcore.records import COMPLETED, INTERRUPTED, STOPPED
from tlcore.run_folder import effective_status, load_record
from tlcore.runs import RunStore

# End to end through every layer, 4 images a batch: a few seconds an epoch, longer than any test waits.
LONG = TINY_CONFIG.replace(freeze_at=0, epochs=50, batch_size=4)
DEADLINE_S = 240  # generous: CI machines are loaded, and each job starts a worker and TensorFlow


def wait_until(condition, what: str, timeout: float = DEADLINE_S):
    wait_for(condition, timeout, what, poll_s=0.1)


def wait_done(*jobs, timeout: float = DEADLINE_S) -> None:
    wait_until(lambda: not any(job.running for job in jobs), "end of the jobs", timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray of 2 CPUs behind its dispatcher, the run store it checked, and a small dataset."""
    root = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as patch:
        # The workers import the tests' own job functions (tests.ray_helpers).
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        backend = RayBackend(LOCAL, cpus=2)
        backend.connect(root / "runs")
        try:
            yield backend, RunStore(root / "runs"), make_dataset_folder(root / "data", n_train=12, n_val=6, size=32)
        finally:
            dispatcher = backend._process
            backend.close()
    assert dispatcher is None or dispatcher.poll() is not None, "the dispatcher (and its Ray) outlived the tests"


def info_of(folder: Path):
    return scan(folder, validation_split=TINY_CONFIG.validation_split, seed=TINY_CONFIG.seed)


def listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets listening in `pid`'s network namespace (/proc/PID/net/tcp, tcp6)."""
    found = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                found.add(local.rsplit(":", 1)[0])
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_the_local_ray_listens_on_loopback_only(cluster):
    backend, _, _ = cluster
    assert backend.isolated
    addresses = listening_addresses(backend.dispatcher_pid)
    assert addresses and addresses <= LOOPBACK, addresses
    assert backend.slots() == 2
    assert backend.describe() == "a local Ray: 1 node, 2 CPUs; 2 jobs at a time"


def test_two_sessions_train_at_once_in_separate_workers_with_this_process_events(cluster, tmp_path):
    backend, store, folder = cluster
    registry = JobRegistry(backend=backend)
    info = info_of(folder)
    seen: list[object] = []
    # A store of its own (on the shared storage): its frozen features are extracted, not reused from the other's.
    own = RunStore(store.root / "one")
    first = start_training("session one", TINY_CONFIG, info, own, registry=registry, listener=seen.append)
    second = start_training("session two", TINY_CONFIG, info, store, registry=registry)
    wait_done(first, second)
    snaps = [first.snapshot(), second.snapshot()]
    assert [s.status for s in snaps] == [COMPLETED, COMPLETED], [s.error for s in snaps]
    workers = {s.worker for s in snaps}
    assert len(workers) == 2 and all(f"(pid {os.getpid()})" not in w for w in workers)
    # Side by side, not one after the other: each started before the other finished.
    assert snaps[0].finished is not None and snaps[1].finished is not None
    assert snaps[0].started < snaps[1].finished and snaps[1].started < snaps[0].finished
    for snap in snaps:
        record = load_record(Path(snap.run_dir))
        assert f"{record.host} (pid {record.pid})" == snap.worker  # the worker wrote its own run
        assert record.status == COMPLETED and record.model_saved and len(record.history) == 1
    # The live view gets what it gets from a job in this process: the same events, in the same order.
    here: list[object] = []
    outcome = backend_from_env().call(
        train_job, (TINY_CONFIG, info, RunStore(tmp_path)), here.append, threading.Event()
    )
    assert outcome.status == COMPLETED
    from_worker = [type(e).__name__ for e in seen if not isinstance(e, WorkerStarted)]
    assert from_worker == [type(e).__name__ for e in here] and from_worker.count("BatchEnd") >= 2


def test_stop_ends_a_job_within_a_batch_and_a_killed_worker_leaves_an_interrupted_run(cluster):
    backend, store, folder = cluster
    registry = JobRegistry(backend=backend)
    info = info_of(folder)
    stopped = start_training("stopper", LONG, info, store, registry=registry)
    doomed = start_training("doomed", LONG, info, store, registry=registry)
    for job in (stopped, doomed):
        wait_until(lambda job=job: job.snapshot().epoch >= 2 and job.snapshot().batch >= 1, "batch of epoch 2")
    pid = int(doomed.snapshot().worker.rsplit("pid ", 1)[1].rstrip(")"))
    os.kill(pid, signal.SIGKILL)
    wait_done(doomed, timeout=60)
    snap = doomed.snapshot()
    assert snap.status == FAILED
    assert f"pid {pid} on {socket.gethostname()}" in snap.error and "died mid-run" in snap.error
    assert "finished epoch" in snap.error and INTERRUPTED in snap.error
    record = load_record(Path(snap.run_dir))
    assert record.status == INTERRUPTED and effective_status(record) == INTERRUPTED
    assert len(record.history) >= 1 and not record.history.rows[0].partial
    # The other job went on; Stop ends it within a batch and keeps what it learned.
    assert stopped.running
    epoch_at_stop = stopped.snapshot().epoch
    stopped.stop()
    wait_done(stopped, timeout=60)
    snap = stopped.snapshot()
    assert snap.status == STOPPED, snap.error
    record = load_record(Path(snap.run_dir))
    assert record.status == STOPPED and record.model_saved
    # An epoch is a handful of batches: the Stop (collected every 0.1 s) lands in this epoch or the next.
    assert 1 <= len(record.history) <= epoch_at_stop + 1 < LONG.epochs


def test_a_queued_job_shows_its_place_and_starts_by_itself(cluster):
    backend, store, folder = cluster
    registry = JobRegistry(max_active=1, backend=backend)
    info = info_of(folder)
    first = start_training("first", TINY_CONFIG, info, store, registry=registry)
    second = start_training("second", TINY_CONFIG, info, store, registry=registry)
    wait_until(lambda: second.snapshot().stage == "queued", "queued stage")
    assert "place 1 in the queue" in second.snapshot().message
    assert "a local Ray" in second.snapshot().message
    wait_done(first, second)
    assert first.snapshot().status == second.snapshot().status == COMPLETED
    first_finished = first.snapshot().finished
    assert first_finished is not None
    assert second.snapshot().started >= first_finished - 0.5


def test_a_sweep_spreads_its_points_over_the_workers_with_the_in_process_result(cluster, tmp_path):
    backend, store, folder = cluster
    info = info_of(folder)
    base = TINY_CONFIG.replace(epochs=1)
    results = {}
    for name, registry in (("ray", JobRegistry(backend=backend)), ("here", JobRegistry(backend=backend_from_env()))):
        # Fresh stores: no features stored by earlier tests, so both sweeps extract the same shared ones.
        runs = RunStore(store.root / "sweep") if name == "ray" else RunStore(tmp_path / "runs")
        job = start_sweep(name, base, info, points=(18, 14), scratch=False, store=runs, registry=registry)
        wait_done(job)
        assert job.snapshot().status == COMPLETED, job.snapshot().error
        results[name] = (job.result, job.snapshot())
    (ray_result, ray_snap), (here_result, _) = results["ray"], results["here"]

    def shape(points):
        return [(p.label, p.freeze_at, p.status, p.trainable_params, p.epochs_done, p.route) for p in points]

    assert shape(ray_result.points) == shape(here_result.points)
    assert [p.label for p in ray_snap.sweep.points] == ["k=18", "k=14"] and ray_snap.sweep.total_points == 2
    assert ray_result.shared_points == here_result.shared_points == [14, 18]
    records = [load_record(Path(p.run_dir)) for p in ray_result.points]
    assert {r.tags["sweep"] for r in records} == {ray_result.sweep_id}
    assert len({r.pid for r in records}) == 2 and os.getpid() not in {r.pid for r in records}  # a worker each


def test_a_transfer_curve_spreads_its_units_over_the_workers(cluster):
    from tlcore.curve_records import CurveStore

    backend, store, folder = cluster
    runs = RunStore(store.root / "curve")
    job = start_transfer_curve("ray", TINY_CONFIG, info_of(folder), (14, 18), 1, runs, JobRegistry(backend=backend))
    wait_done(job)
    assert job.snapshot().status == COMPLETED, job.snapshot().error
    assert job.snapshot().stages["curve"] == (7, 7)
    (saved,) = CurveStore(runs).list()
    assert saved.done and saved.curve is not None and saved.curve.points == (14, 18)
    records = [s.record for s in CurveStore(runs).runs_of(saved.curve_id).list()]
    assert len(records) == 7 and {r.tags["curve"] for r in records} == {saved.curve_id}
    by_point = {point: {r.pid for r in records if r.tags["point"] == point} for point in (14, 18)}
    assert all(len(pids) == 1 for pids in by_point.values())  # a unit's runs in one worker
    assert len(by_point[14] | by_point[18]) == 2 and os.getpid() not in by_point[14] | by_point[18]  # a worker each


def test_a_run_store_the_workers_do_not_share_is_refused(cluster):
    backend, store, folder = cluster
    from tests.ray_helpers import write_probe_on_a_disk_of_its_own

    with pytest.raises(StorageNotShared, match="is not shared with the Ray workers") as refused:
        backend.check_storage(str(store.root), writer=write_probe_on_a_disk_of_its_own)
    assert str(store.root.resolve()) in str(refused.value) and "TLLAB_RUNS_DIR" in str(refused.value)
    registry = JobRegistry(backend=backend)
    with pytest.raises(ClusterError, match="is not shared"):
        start_training("refused", TINY_CONFIG, info_of(folder), store, registry=registry)
    assert backend.describe() == "Ray (local): not usable"
    backend.check_storage(str(store.root))  # shared after all (say, the mount came back): jobs run again
    assert backend.problem() == ""


def test_without_ray_installed_the_address_gives_one_clear_error(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    monkeypatch.setenv("TLLAB_RAY_ADDRESS", "auto")
    registry = JobRegistry()
    with pytest.raises(ClusterError) as err:
        start_training("nobody", TINY_CONFIG, info_of(make_dataset_folder(tmp_path)), None, registry=registry)
    message = (
        "TLLAB_RAY_ADDRESS is set ('auto'), but Ray is not installed. Install it with "
        "`pip install -r requirements-ray.txt` (or the project's `ray` extra), or unset TLLAB_RAY_ADDRESS "
        "to train on this machine."
    )
    assert str(err.value) == message
    # The command line says the same, once, and exits 3.
    from tlcore import cli, jobs

    monkeypatch.setattr(jobs.JOBS, "backend", registry.backend)
    folder = make_dataset_folder(tmp_path / "cli")
    code = cli.main(["train", "--data", str(folder), "--weights", "none", "--image-size", "32", "--epochs", "1"])
    assert code == cli.EXIT_CLUSTER == 3
    assert capsys.readouterr().err.strip().endswith(message)


def test_the_train_page_runs_a_job_on_the_cluster_without_knowing_it(cluster, monkeypatch):
    """The page is the same page: it starts the job, follows it and says which worker trained it."""
    from streamlit.testing.v1 import AppTest

    from dashboard.state import K
    from tlcore.jobs import JOBS

    backend, store, folder = cluster
    monkeypatch.setattr(JOBS, "backend", backend)
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(store.root))
    at = open_on_tiny_folder("train", folder, **{K.epochs: 1})
    assert "Jobs run on a local Ray: 1 node, 2 CPUs; 2 jobs at a time." in [c.value for c in at.sidebar.caption]
    at.button(key="start_training").click().run()
    job = JOBS.get(at.session_state[K.job_id], ADMIN)
    assert job is not None
    wait_until(lambda: not job.running, "end of the page's job")
    at.run()
    assert not at.exception
    assert "completed" in train_status(at), job.snapshot().error
    worker = job.snapshot().worker
    device = load_record(Path(job.snapshot().run_dir)).device
    assert (
        worker
        and device
        and f"Trained by the Ray worker **{worker}** on **{device}**." in [c.value for c in at.caption]
    )
    assert Path(at.session_state[K.last_run_dir]).parent == store.root
    # A reloaded tab (a new session; the URL carries the owner and the job) finds the job again.
    reloaded = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    reloaded.query_params["owner"] = at.query_params["owner"]
    reloaded.query_params["job"] = job.id
    for key in (K.source, K.folder, K.weights_choice, K.image_size):
        reloaded.session_state[key] = at.session_state[key]
    reloaded.run()
    reloaded.switch_page("pages/train.py").run()
    assert not reloaded.exception and reloaded.session_state[K.job_id] == job.id
    assert f"Trained by the Ray worker **{worker}** on **{device}**." in [c.value for c in reloaded.caption]


def _ray_processes(dispatcher_pid: int) -> list[int]:
    """The local Ray's own servers (gcs_server, raylet): the dispatcher's children of those names."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == dispatcher_pid and name in ("gcs_server", "raylet"):
            found.append(int(entry.name))
    return found


def test_the_cluster_going_away_mid_run_is_one_clear_message_and_the_next_job_reconnects(cluster):
    """The last test on the cluster fixture: it ends the local Ray."""
    backend, store, folder = cluster
    registry = JobRegistry(backend=backend)
    info = info_of(folder)
    job = start_training("unlucky", LONG, info, store, registry=registry)
    wait_until(lambda: len(job.snapshot().history) >= 1, "a finished epoch")
    servers = _ray_processes(backend.dispatcher_pid)
    assert len(servers) == 2, servers
    for pid in servers:
        os.kill(pid, signal.SIGKILL)
    wait_done(job, timeout=120)
    snap = job.snapshot()
    assert snap.status == FAILED and "The Ray cluster" in snap.error and "went away" in snap.error, snap.error
    assert load_record(Path(snap.run_dir)).history  # its finished epochs are on disk
    backend.connect()  # what the next job does: a new local Ray
    assert backend.describe() == "a local Ray: 1 node, 2 CPUs; 2 jobs at a time"


def test_slots_follow_the_cluster_cpus_and_gpus():
    """A job asks for TLLAB_RAY_CPUS_PER_JOB CPUs, and one GPU where the cluster has any (no Ray started)."""
    backend = RayBackend("auto", cpus_per_job=4)
    assert backend.slots() == 1  # not connected yet: the first job connects
    backend._resources = {"CPU": 32.0, "nodes": 2.0}
    assert backend.slots() == 8
    assert backend.describe() == "the Ray cluster at auto: 2 nodes, 32 CPUs; 8 jobs at a time"
    backend._resources = {"CPU": 32.0, "GPU": 2.0, "nodes": 2.0}
    assert backend.slots() == 2  # a GPU each: two at a time however many CPUs
    assert backend.describe() == "the Ray cluster at auto: 2 nodes, 32 CPUs, 2 GPUs; 2 jobs at a time"
    assert backend.job_resources() == {"num_cpus": 4, "num_gpus": 1}
    backend._resources = {"CPU": 32.0, "nodes": 2.0}
    assert backend.job_resources() == {"num_cpus": 4}
