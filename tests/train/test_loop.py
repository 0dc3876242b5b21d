"""End-to-end runs of the training loop on a tiny model: outputs, exact resume, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qaembed.errors import ConfigError, QaembedError
from qaembed.train import StopTraining, train
from qaembed.train.checkpoint import latest_checkpoint
from qaembed.train.config import parse_config


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu").state_dict()


def test_run_folder_holds_model_metrics_result_and_provenance(tiny_config, tmp_path):
    from sentence_transformers import SentenceTransformer

    run = tmp_path / "run"
    result = train(parse_config(tiny_config), run)
    assert result.status == "completed" and result.steps == 6
    records = _metrics(run)
    step_logs = [r for r in records if "loss" in r]
    assert [r["step"] for r in step_logs] == [1, 2, 3, 4, 5, 6]
    assert all(r["texts_per_s"] > 0 and r["lr"] >= 0 for r in step_logs)
    dev_steps = [r["step"] for r in records if "dev/retrieval/ndcg@10" in r]
    assert dev_steps == [0, 3, 6]
    saved = json.loads((run / "result.json").read_text())
    assert saved["status"] == "completed" and saved["best_step"] in dev_steps
    assert saved["best_metric"] == max(r["dev/retrieval/ndcg@10"] for r in records if "dev/retrieval/ndcg@10" in r)
    provenance = json.loads((run / "provenance.json").read_text())
    assert len(provenance["data_hash"]) == 16 and "torch" in provenance["versions"]
    assert (run / "config.yaml").is_file()
    model = SentenceTransformer(str(run / "model"), device="cpu")
    assert model.encode(["a question?"]).shape == (1, 32)
    assert (run / "best_model" / "modules.json").is_file()
    # weights moved away from the base model
    base = _weights(tiny_config["model"]["base"])
    assert any(not torch.equal(base[k], v) for k, v in model.state_dict().items())


def test_dev_evaluation_off_evaluates_nothing_and_trains_the_same_weights(tiny_config, tmp_path, monkeypatch):
    import qaembed.train.loop as loop

    calls = []
    real = loop.evaluate_dev
    monkeypatch.setattr(loop, "evaluate_dev", lambda *args: calls.append(1) or real(*args))
    tiny_config["training"].update(max_steps=3, eval_every=None, save_every=None)
    with_dev = train(parse_config(tiny_config), tmp_path / "with_dev")
    assert len(calls) == 2  # step 0 and the end
    calls.clear()
    tiny_config["training"]["dev_evaluation"] = False
    without = train(parse_config(tiny_config), tmp_path / "without")
    assert calls == [] and without.final_dev is None and without.best_model_dir is None
    assert not any("dev/retrieval/ndcg@10" in r for r in _metrics(tmp_path / "without"))
    assert without.question_order == with_dev.question_order  # evaluation takes no part in the training RNG
    first, second = _weights(tmp_path / "with_dev" / "model"), _weights(tmp_path / "without" / "model")
    assert all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(ConfigError, match="dev_evaluation: false evaluates nothing"):
        parse_config({**tiny_config, "training": {**tiny_config["training"], "eval_every": 2}})


def test_killed_and_resumed_run_matches_uninterrupted_run(tiny_config, tmp_path):
    config = parse_config(tiny_config)
    straight = tmp_path / "straight"
    train(config, straight)

    killed = tmp_path / "killed"

    def kill_after_five(step: int) -> None:
        if step == 5:  # checkpoint is at step 4: step 5 is lost and redone on resume
            raise StopTraining

    stopped = train(config, killed, step_callback=kill_after_five)
    assert stopped.status == "stopped" and stopped.steps == 5
    assert latest_checkpoint(killed).name == "step-000004"
    assert not (killed / "model").exists()
    resumed = train(config, killed, resume=True)
    assert resumed.status == "completed" and resumed.steps == 6

    first, second = _weights(straight / "model"), _weights(killed / "model")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "texts_per_s"} for r in rows]  # noqa: E731
    assert strip(_metrics(straight)) == strip(_metrics(killed))


def test_resume_refuses_a_changed_config_and_fresh_run_refuses_existing_folder(tiny_config, tmp_path):
    run = tmp_path / "run"
    config = parse_config(tiny_config)
    train(config, run, step_callback=lambda step: (_ for _ in ()).throw(StopTraining()) if step == 2 else None)
    with pytest.raises(QaembedError, match="already holds a run"):
        train(config, run)
    tiny_config["training"]["lr"] = 5e-4
    with pytest.raises(ConfigError, match="training.lr"):
        train(parse_config(tiny_config), run, resume=True)


def test_non_finite_loss_stops_with_step_and_question_ids(tiny_config, tmp_path, monkeypatch):
    from qaembed.train import loop

    calls = {"n": 0}
    real = loop.forward_backward

    def poisoned(*args, **kwargs):
        output = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            return output._replace(loss=torch.tensor(float("nan")))
        return output

    monkeypatch.setattr(loop, "forward_backward", poisoned)
    run = tmp_path / "run"
    with pytest.raises(QaembedError, match=r"non-finite loss \(nan\) at step 3 .*questions: t:\d+") as info:
        train(parse_config(tiny_config), run)
    assert "checkpoint" in str(info.value)
    assert latest_checkpoint(run).name == "step-000002"
    assert json.loads((run / "result.json").read_text())["status"] == "failed"


def test_projection_head_and_pooling_are_saved_with_the_model(tiny_config, tmp_path):
    from sentence_transformers import SentenceTransformer

    tiny_config["model"].update(projection_dim=8, pooling="cls", gradient_checkpointing=True)
    tiny_config["training"].update(max_steps=1, eval_every=None, save_every=None)
    run = tmp_path / "run"
    train(parse_config(tiny_config), run)
    model = SentenceTransformer(str(run / "model"), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert model[1].pooling_mode == "cls"
    embedding = model.encode(["what hops?"])
    assert embedding.shape == (1, 8) and abs(float((embedding**2).sum()) - 1) < 1e-5


def test_a_dev_split_with_nothing_to_evaluate_is_refused_before_the_run_folder_is_written(tiny_config, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_config["data"]["dataset"], data)
    (data / "dev.jsonl").write_text("")
    tiny_config["data"]["dataset"] = str(data)
    with pytest.raises(ConfigError, match="training.dev_evaluation: the dev split of .* has 0 questions"):
        train(parse_config(tiny_config), tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    tiny_config["training"].update(dev_evaluation=False, eval_every=None)  # what the message suggests
    assert train(parse_config(tiny_config), tmp_path / "run").status == "completed"


def test_mixed_precision_without_gpu_is_a_config_error(tiny_config, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    tiny_config["training"]["mixed_precision"] = "bf16"
    with pytest.raises(ConfigError, match="training.mixed_precision"):
        train(parse_config(tiny_config), tmp_path / "run")


def test_tensorboard_tracker_writes_events(tiny_config, tmp_path):
    tiny_config["training"].update(max_steps=1, eval_every=None, save_every=None, trackers=["tensorboard"])
    run = tmp_path / "run"
    train(parse_config(tiny_config), run)
    assert list((run / "tracking").rglob("events.out.tfevents.*"))


def test_wandb_tracker_works_offline_without_network(tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    tiny_config["training"].update(max_steps=2, eval_every=None, save_every=None, trackers=["wandb"])
    result = train(parse_config(tiny_config), tmp_path / "run")
    assert result.status == "completed"
    offline_runs = list((tmp_path / "wandb").rglob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].rglob("*.wandb"))


def test_missing_tracker_package_is_a_clear_config_error(tiny_config, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    tiny_config["training"].update(max_steps=1, trackers=["wandb"])
    with pytest.raises(ConfigError, match="'wandb' is not installed"):
        train(parse_config(tiny_config), tmp_path / "run")


def test_gradcache_run_trains_the_same_weights_as_a_plain_run(tiny_config, tmp_path):
    tiny_config["training"].update(max_steps=2, eval_every=None, save_every=None)
    plain = train(parse_config(tiny_config), tmp_path / "plain")
    tiny_config["training"]["mini_batch_size"] = 6
    cached = train(parse_config(tiny_config), tmp_path / "cached")
    assert plain.steps == cached.steps == 2
    first, second = _weights(tmp_path / "plain" / "model"), _weights(tmp_path / "cached" / "model")
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, atol=1e-5, rtol=1e-4, msg=name)
    plain_losses = [r["loss"] for r in _metrics(tmp_path / "plain") if "loss" in r]
    cached_losses = [r["loss"] for r in _metrics(tmp_path / "cached") if "loss" in r]
    assert cached_losses == pytest.approx(plain_losses, abs=1e-5)


def test_parameters_the_embedding_never_uses_are_frozen_and_the_rest_train(tiny_config, tmp_path):
    # BERT's pooler is unused by mean pooling: under DDP an unused parameter breaks the
    # second step, so the loop freezes it; every other parameter must still train.
    from sentence_transformers import SentenceTransformer

    from qaembed.batching.collate import Collator
    from qaembed.train.loop import _freeze_unused_parameters

    model = SentenceTransformer(tiny_config["model"]["base"], device="cpu")
    rng_before = torch.get_rng_state()
    frozen = _freeze_unused_parameters(model, Collator(model, 32))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert frozen and all(".pooler." in name for name in frozen)
    assert all(p.grad is None for p in model.parameters())
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == set(frozen)

    run = tmp_path / "run"
    train(parse_config(tiny_config), run)
    base, trained = _weights(tiny_config["model"]["base"]), _weights(run / "model")
    unchanged = {k for k in base if torch.equal(base[k], trained[k])}
    assert unchanged and all(".pooler." in k for k in unchanged)


def test_progress_bar_can_be_hidden(tiny_config, tmp_path, capsys):
    tiny_config["training"].update(max_steps=2, eval_every=None, save_every=None)
    train(parse_config(tiny_config), tmp_path / "shown")
    assert "train:" in capsys.readouterr().err
    train(parse_config(tiny_config), tmp_path / "hidden", progress_bar=False)
    assert "train:" not in capsys.readouterr().err


def test_mlflow_tracker_logs_to_a_local_store_in_the_run_folder(tiny_config, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tiny_config["training"].update(max_steps=2, eval_every=None, save_every=None, trackers=["mlflow"])
    run = tmp_path / "run"
    train(parse_config(tiny_config), run)
    store = run / "tracking" / "mlflow.db"
    assert store.is_file()
    mlflow.set_tracking_uri(f"sqlite:///{store.resolve()}")
    runs = mlflow.search_runs(experiment_names=["qaembed"], output_format="list")
    assert len(runs) == 1
    assert {"loss", "lr", "dev/retrieval/ndcg_at_10"} <= set(runs[0].data.metrics)
    assert runs[0].data.params["loss.name"] == "infonce"


@pytest.mark.parametrize("mini_batch_size", [None, 6], ids=["plain", "gradcache"])
def test_only_logged_steps_turn_loss_metrics_and_grad_norm_into_numbers(tiny_config, tmp_path, host_conversions,
                                                                         mini_batch_size):
    # On a GPU every float() / .item() of a tensor waits for the device. The loss, its metrics and the
    # gradient norm must become numbers only on log steps; qaembed code converts nothing on the others.
    import qaembed

    per_step = []
    tiny_config["training"].update(max_steps=3, log_every=2, eval_every=None, save_every=None,
                                   mini_batch_size=mini_batch_size)
    with host_conversions(only_under=Path(qaembed.__file__).parent) as calls:
        def after_step(step: int) -> None:
            per_step.append(sorted(call for call in calls if call[0] != "tolist"))  # tolist: CPU batch sharding
            calls.clear()

        train(parse_config(tiny_config), tmp_path / "run", step_callback=after_step, progress_bar=False)
    unlogged, logged, last = ([name for name, _ in step] for step in per_step)
    assert unlogged == [], f"step 1 is not logged but converted: {per_step[0]}"
    # loss .item(), float() of loss/accuracy and grad_norm: the numbers metrics.jsonl shows
    assert logged == last == ["__float__", "__float__", "item"], per_step
    assert {where.split(":")[0] for _, where in per_step[1]} == {"loop.py"}
    assert [r["step"] for r in _metrics(tmp_path / "run") if "loss" in r] == [2, 3]
