"""Distributed training (torchrun / DDP): sharded batching, the process-group helpers, and real
2-process Gloo runs on the CPU compared with one process of twice the batch."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _distributed_worker import TEXT, corpus_of, small_model, spawn_ranks, train_config
from textgen import distributed
from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.data import RandomWindowBatcher, StreamBatcher
from textgen.evaluation import evaluate_split
from textgen.sampler import Sampler
from textgen.trainer import Trainer

SOURCE = Path(__file__).resolve().parents[1] / "src"


def shards(make, world_size):
    return [make(rank=r, world_size=world_size) for r in range(world_size)]


@pytest.mark.parametrize("world_size", [2, 3])
def test_stream_shards_are_one_process_of_the_global_batch_split_by_rows(world_size):
    ids = np.arange(500, dtype=np.int32)
    whole = StreamBatcher(ids, batch_size=2 * world_size, seq_len=5)
    parts = shards(lambda **k: StreamBatcher(ids, 2, 5, **k), world_size)
    assert all(len(p) == len(whole) for p in parts)
    for index in range(len(whole)):
        x, y = whole.get_batch(index)
        pieces = [p.get_batch(index) for p in parts]
        assert torch.equal(torch.cat([px for px, _ in pieces]), x)
        assert torch.equal(torch.cat([py for _, py in pieces]), y)


def test_stream_shards_keep_every_stream_on_one_rank_across_batches():
    ids = np.arange(200, dtype=np.int32)
    rank1 = StreamBatcher(ids, 2, 4, rank=1, world_size=2)  # streams 2 and 3 of 4 (L=49)
    first, second = rank1.get_batch(0)[0], rank1.get_batch(1)[0]
    assert first.tolist() == [[98, 99, 100, 101], [147, 148, 149, 150]]
    assert (second[:, 0] == first[:, -1] + 1).all()  # each row continues its own stream


def test_random_window_shards_split_one_shared_permutation():
    ids = np.arange(400, dtype=np.int32)
    whole = RandomWindowBatcher(ids, 6, 4, seed=3, drop_last=True)
    parts = shards(lambda **k: RandomWindowBatcher(ids, 3, 4, seed=3, drop_last=True, **k), 2)
    assert len(parts[0]) == len(whole) == 99 // 6
    for index in range(len(whole)):
        x, _ = whole.get_batch(index, epoch=1)
        assert torch.equal(torch.cat([p.get_batch(index, epoch=1)[0] for p in parts]), x)


def test_sharded_batchers_refuse_what_cannot_be_shared():
    ids = np.arange(400, dtype=np.int32)
    with pytest.raises(ValueError, match="drop_last=True"):
        RandomWindowBatcher(ids, 3, 4, seed=0, rank=0, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        StreamBatcher(ids, 2, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"batch_size=8 \(2 processes x 4\)"):
        StreamBatcher(np.arange(30, dtype=np.int32), 4, 4, rank=0, world_size=2)


def test_cursor_records_the_world_size_and_old_cursors_mean_one_process():
    ids = np.arange(400, dtype=np.int32)
    two = StreamBatcher(ids, 2, 4, rank=1, world_size=2)
    state = two.state_dict()
    assert state["world_size"] == 2
    with pytest.raises(ValueError, match="world_size=2.*world_size=1"):
        StreamBatcher(ids, 2, 4).load_state_dict(state)
    old = {k: v for k, v in StreamBatcher(ids, 2, 4).state_dict().items() if k != "world_size"}
    StreamBatcher(ids, 2, 4).load_state_dict({**old, "batch": 3})  # saved before world_size


def test_one_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup("cpu") == torch.device("cpu")
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    value = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce(value).tolist() == [1.0, 2.0]
    assert distributed.gather_to_main("x") == ["x"]
    assert distributed.main_first(lambda: 7) == 7
    distributed.agree(None)
    distributed.barrier()
    distributed.shutdown()


def test_malformed_launch_variables_are_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(distributed.DistributedError, match="WORLD_SIZE='two'"):
        distributed.setup("cpu")


# ---------------------------------------------------------------- 2 real processes (Gloo, CPU)
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-process run of `_distributed_worker.scenario` (several small runs), shared by the
    tests below: starting processes is the slow part."""
    root = tmp_path_factory.mktemp("ddp")
    return root, spawn_ranks(root)


def one_process(root, batching):
    """The reference: one process with the global batch (2 x 2 rows)."""
    corpus = corpus_of(root)
    out = root / f"{batching}-1"
    trainer = Trainer(
        small_model(corpus), corpus, train_config(out, batch_size=4, batching=batching)
    )
    return trainer.fit(), out


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("batching", ["stream", "random"])
def test_two_ranks_of_batch_b_train_like_one_process_of_batch_2b(two_ranks, batching):
    root, ranks = two_ranks
    single, single_out = one_process(root, batching)
    for seen in ranks:  # every rank reports the same validation
        assert seen[batching]["step"] == single.step == 12
        assert seen[batching]["best_val_loss"] == pytest.approx(single.best_val_loss, rel=1e-3)
    two = [r for r in records(root / f"{batching}-2") if "val_loss" in r]
    one = [r for r in records(single_out) if "val_loss" in r]
    assert [r["val_loss"] for r in two] == pytest.approx([r["val_loss"] for r in one], rel=1e-3)
    assert two[-1]["val_tokens"] == one[-1]["val_tokens"]
    weights_two = load_checkpoint(root / f"{batching}-2" / "last.pt").model_state
    weights_one = load_checkpoint(single_out / "last.pt").model_state
    for name, value in weights_one.items():
        torch.testing.assert_close(weights_two[name], value, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_only_rank_0_writes_and_logs_each_step_once(two_ranks):
    root, _ = two_ranks  # rank 1 had save_checkpoint replaced by a function that fails
    out = root / "stream-2"
    assert {p.name for p in out.iterdir()} == {
        ".lock",  # rank 0's: one writer per run folder
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "train_config.json",
    }
    logged = records(out)
    train = [r["step"] for r in logged if "train_loss" in r]
    assert train == list(range(1, 13))
    start = logged[0]
    assert (start["world_size"], start["global_batch_size"]) == (2, 4)
    assert all(r["tokens_per_s"] > 0 for r in logged if "train_loss" in r)
    meta = load_checkpoint(out / "last.pt").metadata
    assert (meta["world_size"], meta["global_batch_size"], meta["tokens_seen"]) == (
        2,
        4,
        12 * 4 * 16,
    )


@pytest.mark.slow
def test_two_rank_resume_is_bitwise_exact_even_when_one_rank_asks_to_stop(two_ranks):
    root, ranks = two_ranks
    assert [r["first_stop"] for r in ranks] == [
        "callback",
        "callback",
    ]  # rank 1 asked; both stopped
    assert [r["resumed_step"] for r in ranks] == [12, 12]
    assert all(r["resumed_equal"] for r in ranks)  # each rank: the uninterrupted run's weights
    saved = load_checkpoint(root / "resumed" / "last.pt").train_state
    assert saved is not None and saved["world_size"] == 2 and len(saved["ranks"]) == 2
    hidden = [part["hidden"][0] for part in saved["ranks"]]
    assert not torch.equal(hidden[0], hidden[1])  # each rank carried the state of its streams
    straight = load_checkpoint(root / "straight" / "last.pt").model_state
    resumed = load_checkpoint(root / "resumed" / "last.pt").model_state
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_a_nan_on_one_rank_ends_every_rank_with_the_same_error(two_ranks):
    _, ranks = two_ranks
    messages = [r["nan"] for r in ranks]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "training diverged at step 4" in messages[0]


@pytest.mark.slow
def test_an_error_on_rank_0_alone_reaches_every_rank(two_ranks):
    _, ranks = two_ranks
    assert ranks[0]["on_main"] == "OSError: No space left on device"
    assert (
        ranks[1]["on_main"] == "DistributedError: rank 0 failed: OSError: No space left on device"
    )


def test_validation_shares_add_up_to_one_process(tmp_path):
    corpus = corpus_of(tmp_path)
    model = small_model(corpus)
    whole = evaluate_split(model, corpus.val, batch_size=4, seq_len=16)
    shares = [
        evaluate_split(model, corpus.val, batch_size=2, seq_len=16, rank=r, world_size=2)
        for r in (0, 1)
    ]
    assert sum(s["tokens"] for s in shares) == whole["tokens"]
    nats = sum(s["loss"] * s["tokens"] for s in shares)
    assert nats == pytest.approx(whole["loss"] * whole["tokens"], rel=1e-6)


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_only_with_two_ranks_and_loads_in_one_process(two_ranks):
    root, _ = two_ranks
    corpus = corpus_of(root)
    out = root / "stream-2"
    one = Trainer(small_model(corpus), corpus, train_config(out, batch_size=2, max_steps=20))
    with pytest.raises(
        ValueError, match="trained by 2.*global batch from 4 to 2.*--nproc-per-node 2"
    ):
        one.fit(resume=True)
    checkpoint = load_checkpoint(out / "best.pt")
    assert not any(k.startswith("module.") for k in checkpoint.model_state)
    text = Sampler(checkpoint.build_model(), checkpoint.tokenizer).generate(
        "the ", max_new_tokens=20, seed=0
    )
    assert len(text[0].token_ids) == 20


def torchrun(*args, cwd):
    """``torchrun --standalone --nproc-per-node 2 -m textgen ARGS`` in a new session."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, "-m", "textgen", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the launcher and both workers, as in a terminal
    )


@pytest.mark.slow
def test_textgen_train_under_torchrun_stops_on_ctrl_c_and_resumes_with_two_ranks(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    flags = ["--batch-size", 2, "--seq-len", 16, "--hidden-size", 16, "--embed-dim", 8,
             "--device", "cpu", "--precision", "fp32", "--cache-dir", tmp_path / "cache", "--quiet",
             "--val-fraction", 0.2, "--log-every", 1]  # fmt: skip
    run = tmp_path / "run"
    launch = torchrun("train", "t.txt", "--out", run, "--max-steps", 0, "--eval-every", 10**6,
                      "--schedule", "constant", *flags, cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 180
    while not (run / "metrics.jsonl").exists() or len(records(run)) < 6:
        assert launch.poll() is None and time.monotonic() < deadline, launch.communicate()[0]
        time.sleep(0.2)
    os.killpg(launch.pid, signal.SIGINT)
    output = launch.communicate(timeout=120)[0]
    stopped = int(re.search(r"stopped at step (\d+) \(signal\)", output).group(1))
    assert output.count("stopped at step") == 1  # rank 0 alone reports
    assert load_checkpoint(run / "last.pt").metadata["step"] == stopped

    assert main(["info", str(run), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert (details["world_size"], details["global_batch_size"]) == (2, 4)
    code = main(
        ["train", "--out", str(run), "--resume", "--max-steps", str(stopped + 3), "--quiet"]
    )
    assert code == 1  # one process may not continue a 2-process run
    assert "trained by 2" in capsys.readouterr().err

    resumed = torchrun("train", "--out", run, "--resume", "--max-steps", stopped + 3, "--quiet",
                       cwd=tmp_path)  # fmt: skip
    output = resumed.communicate(timeout=180)[0]
    assert resumed.returncode == 0, output
    assert f"stopped at step {stopped + 3} (max_steps)" in output
    steps = [r["step"] for r in records(run) if "train_loss" in r]
    assert steps == list(range(1, stopped + 4))  # each step logged once, across the resume


def test_info_shows_the_processes_and_the_global_batch(tmp_path, capsys):
    corpus = corpus_of(tmp_path)
    Trainer(
        small_model(corpus), corpus, train_config(tmp_path / "run", batch_size=4, max_steps=1)
    ).fit()
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "1 process" in out and re.search(r"global batch\s+4\n", out)
    assert main(["info", str(tmp_path / "run"), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert (details["world_size"], details["global_batch_size"]) == (1, 4)


@pytest.fixture
def two_gpu_launch(monkeypatch):
    """Rank 1 of a 2-process torchrun launch on a machine said to have ``gpus`` CUDA devices."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device(str(name)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)

    def machine(gpus, nccl=True):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(distributed.dist, "is_nccl_available", lambda: nccl)

    return machine


def test_fewer_gpus_than_local_ranks_is_refused(two_gpu_launch):
    two_gpu_launch(gpus=1)
    with pytest.raises(distributed.DistributedError, match="LOCAL_RANK=1 needs GPU 1.*1 CUDA"):
        distributed.setup("cuda")


def test_one_named_gpu_for_every_rank_is_refused(two_gpu_launch):
    two_gpu_launch(gpus=2)
    with pytest.raises(distributed.DistributedError, match="pass --device cuda"):
        distributed.setup("cuda:0")


def test_a_missing_backend_is_named(two_gpu_launch):
    two_gpu_launch(gpus=2, nccl=False)
    with pytest.raises(distributed.DistributedError, match="nccl backend.*not available"):
        distributed.setup("cuda")


def test_mps_has_no_backend(two_gpu_launch):
    with pytest.raises(distributed.DistributedError, match="no backend for MPS"):
        distributed.setup("mps")
