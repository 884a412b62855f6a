"""Two training scripts written the way public PyTorch scripts are (tests/scripts/), with graphc imports: a device
line, Dataset classes, DataLoaders with worker processes and RandomSamplers, random_split, checkpoints. They must run
unchanged and learn."""
from __future__ import annotations

import pathlib
import runpy

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


def test_digits_cnn_with_workers_learns(capsys):
    main = runpy.run_path(str(SCRIPTS / "digits_cnn_workers.py"))["main"]
    losses, accuracy = main(["--epochs", "2", "--log-interval", "1000"])
    assert losses[-1] < losses[0] and accuracy > 0.5  # chance is 0.1
    assert "Test set: Accuracy" in capsys.readouterr().out


def test_regression_trainer_with_persistent_workers_learns(tmp_path):
    main = runpy.run_path(str(SCRIPTS / "regression_trainer.py"))["main"]
    history = main(["--max-epochs", "3", "--out", str(tmp_path)])
    train_losses, val_losses = zip(*history)
    assert train_losses[-1] < train_losses[0] and val_losses[-1] < 0.1  # the targets' variance is about 0.7
    assert (tmp_path / "model.pt").exists()
